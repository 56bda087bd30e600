// Human messages for every machine error code. Frame codes come from the protocol schema:
// a new code fails compilation until it has a message here.
import type { ErrorCode } from '../gen/frames';
import type { components } from '../gen/api';

export const frameMessages: Record<ErrorCode, string> = {
  bad_frame: 'The app sent something the server could not read.',
  unknown_type: 'The app sent an unknown request.',
  invalid: 'Something in that message was not valid.',
  frame_too_large: 'That message is too large to send.',
  rate_limited: 'You are sending too fast. Wait a moment and try again.',
  unauthorized: 'Your session has expired. Please log in again.',
  slow_consumer: 'The connection was too slow and was reset.',
  server_shutdown: 'The server is restarting.',
  internal: 'The server had a problem. Try again.',
  not_member: 'You are not a member of this conversation.',
  blocked: 'You cannot message this person.',
  message_too_large: 'That message is too long.',
  empty_message: 'Type a message or attach a file first.',
  room_not_found: 'This conversation no longer exists.',
};

type RestCode = components['schemas']['Error']['code'];
/** When the OpenAPI document turns Error.code into an enum, every code must be listed here. */
type RestMessages = string extends RestCode ? Record<string, string> : Record<RestCode, string>;

export const restMessages: RestMessages = {
  invalid_json: 'The app sent a malformed request.',
  unknown_field: 'The app sent a request the server does not understand.',
  body_too_large: 'That is too large.',
  unsupported_media_type: 'The app sent an unsupported request.',
  invalid_argument: 'Something in that request was not valid.',
  unauthorized: 'Please log in.',
  invalid_token: 'Your session has expired. Please log in again.',
  invalid_username: 'Usernames are 3–32 letters, digits, “_”, “.” or “-”, starting with a letter or digit.',
  weak_password: 'Passwords are 8 to 256 characters.',
  username_taken: 'That username is taken.',
  invalid_credentials: 'Wrong username or password.',
  registration_closed: 'Registration is closed on this server.',
  invite_required: 'This server needs an invite code to register.',
  throttled: 'Too many attempts. Wait a few minutes and try again.',
  user_not_found: 'No such person.',
  invalid_profile: 'That profile is not valid.',
  block_self: 'You cannot block yourself.',
  room_not_found: 'This conversation no longer exists.',
  not_member: 'You are not a member of this conversation.',
  blocked: 'You cannot do that: one of you blocked the other.',
  message_too_large: 'That message is too long.',
  empty_message: 'Type a message or attach a file first.',
  rate_limited: 'You are sending too fast. Wait a moment and try again.',
  invalid_client_id: 'The app sent an invalid message id.',
  invalid_attachment: 'That attachment cannot be sent.',
  invalid_body: 'That message contains characters that cannot be sent.',
  invalid_room: 'That group is not valid (check its name).',
  invalid_history: 'Could not load that part of the history.',
  room_full: 'This group is full.',
  not_owner: 'Only the group owner can do that.',
  not_group: 'That only works in groups.',
  already_member: 'That person is already a member.',
  owner_must_transfer: 'Make someone else the owner before leaving.',
  self_direct: 'You cannot start a chat with yourself.',
  invalid_receipt: 'Could not update read status.',
  invalid_search: 'Type what to search for (at most 256 characters).',
  invalid_notification_level: 'That notification setting is not available.',
  invalid_reply: 'The message you replied to is not in this conversation.',
  message_not_found: 'That message is not in this conversation.',
  not_author: 'Only the person who wrote that message can do this.',
  edit_window_passed: 'That message is too old to edit.',
  message_deleted: 'That message was deleted.',
  invalid_reaction: 'That reaction is not a single emoji, or the message has too many different ones.',
  not_found: 'Not found.',
  invalid_subscription: 'This browser gave an invalid push subscription.',
  too_many_subscriptions: 'Notifications are enabled on too many browsers already.',
  push_disabled: 'Notifications are not available on this server.',
  internal: 'The server had a problem. Try again.',
  forbidden_origin: 'This page is not allowed to use your session. Open the app from its own address.',
  forbidden: 'You are not allowed to do that.',
  file_removed: 'This file was removed.',
  no_thumbnail: 'No preview for this file.',
  file_too_large: 'That file is too large.',
  quota_exceeded: 'You have no storage space left for uploads.',
  invalid_range: 'Could not download that part of the file.',
  invalid_upload: 'The upload was not valid.',
  method_not_allowed: 'The app made an unsupported request.',
  link_expired: 'This file link expired. Reload to get a fresh one.',
  invalid_link: 'This file link is not valid.',
};

/** Codes of the client itself (network failures, cancelled uploads). */
export const extraMessages: Record<string, string> = {
  network: 'Cannot reach the server. Check your connection.',
  timeout: 'The server did not answer in time.',
  aborted: 'Upload cancelled.',
};

function pick(table: Record<string, string>, code: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(table, code) ? table[code] : undefined;
}

export function humanFrameError(code: string): string {
  return pick(frameMessages, code) ?? pick(restMessages, code) ?? pick(extraMessages, code) ?? `Something went wrong (${code}).`;
}

export function humanRestError(code: string): string {
  return pick(restMessages, code) ?? pick(extraMessages, code) ?? pick(frameMessages, code) ?? `Something went wrong (${code}).`;
}
