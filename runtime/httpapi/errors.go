package httpapi

import (
	"errors"
	"net/http"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

// ErrorBody is every error response: a stable machine code and a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error already decided at the edge (bad request shape, auth).
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, msg string) error { return &apiError{http.StatusBadRequest, code, msg} }

// domainErrors maps domain sentinels to status and code. Order matters only where one
// error wraps another, which none of these do.
var domainErrors = []struct {
	err    error
	status int
	code   string
}{
	{users.ErrInvalidUsername, http.StatusBadRequest, "invalid_username"},
	{users.ErrWeakPassword, http.StatusBadRequest, "weak_password"},
	{users.ErrUsernameTaken, http.StatusConflict, "username_taken"},
	{users.ErrInvalidCredentials, http.StatusUnauthorized, "invalid_credentials"},
	{users.ErrRegistrationClosed, http.StatusForbidden, "registration_closed"},
	{users.ErrInviteRequired, http.StatusForbidden, "invite_required"},
	{users.ErrThrottled, http.StatusTooManyRequests, "throttled"},
	{users.ErrUserNotFound, http.StatusNotFound, "user_not_found"},
	{users.ErrInvalidToken, http.StatusUnauthorized, "invalid_token"},
	{users.ErrInvalidProfile, http.StatusBadRequest, "invalid_profile"},
	{users.ErrBlockSelf, http.StatusBadRequest, "block_self"},
	{chat.ErrRoomNotFound, http.StatusNotFound, "room_not_found"},
	{chat.ErrNotMember, http.StatusForbidden, "not_member"},
	{chat.ErrBlocked, http.StatusForbidden, "blocked"},
	{chat.ErrMessageTooLarge, http.StatusRequestEntityTooLarge, "message_too_large"},
	{chat.ErrEmptyMessage, http.StatusBadRequest, "empty_message"},
	{chat.ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
	{chat.ErrInvalidClientID, http.StatusBadRequest, "invalid_client_id"},
	{chat.ErrInvalidAttachment, http.StatusBadRequest, "invalid_attachment"},
	{chat.ErrInvalidBody, http.StatusBadRequest, "invalid_body"},
	{chat.ErrInvalidRoom, http.StatusBadRequest, "invalid_room"},
	{chat.ErrInvalidHistory, http.StatusBadRequest, "invalid_history"},
	{chat.ErrUserNotFound, http.StatusNotFound, "user_not_found"},
	{chat.ErrRoomFull, http.StatusConflict, "room_full"},
	{chat.ErrNotOwner, http.StatusForbidden, "not_owner"},
	{chat.ErrNotGroup, http.StatusConflict, "not_group"},
	{chat.ErrAlreadyMember, http.StatusConflict, "already_member"},
	{chat.ErrOwnerMustTransfer, http.StatusConflict, "owner_must_transfer"},
	{chat.ErrSelfDirect, http.StatusBadRequest, "self_direct"},
	{chat.ErrInvalidReceipt, http.StatusBadRequest, "invalid_receipt"},
	{chat.ErrInvalidSearch, http.StatusBadRequest, "invalid_search"},
	{chat.ErrInvalidNotifyLevel, http.StatusBadRequest, "invalid_notification_level"},
	{chat.ErrInvalidReply, http.StatusBadRequest, "invalid_reply"},
	{chat.ErrMessageNotFound, http.StatusNotFound, "message_not_found"},
	{chat.ErrNotAuthor, http.StatusForbidden, "not_author"},
	{chat.ErrEditWindow, http.StatusForbidden, "edit_window_passed"},
	{chat.ErrMessageDeleted, http.StatusConflict, "message_deleted"},
	{chat.ErrInvalidReaction, http.StatusBadRequest, "invalid_reaction"},
}

// classify turns an error into a response; ok is false for unexpected errors, which are
// logged and answered with a generic 500.
func classify(err error) (status int, body ErrorBody, ok bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ErrorBody{Code: ae.code, Message: ae.msg}, true
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return d.status, ErrorBody{Code: d.code, Message: err.Error()}, true
		}
	}
	return http.StatusInternalServerError, ErrorBody{Code: "internal", Message: "internal error"}, false
}
