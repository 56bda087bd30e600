// Package protocol holds Parley's wire types: the versioned envelopes of the events that
// travel on the bus, their payloads, the topic names and the reason codes that the
// WebSocket edge reuses. It imports nothing of ours, so every role can depend on it.
package protocol

// Topics of the bus. Each event type travels on exactly one topic.
const (
	// TopicMessageSent carries MessageSent, gateway → core, keyed by room id so that a
	// room keeps its order.
	TopicMessageSent = "chat.message_sent"
	// TopicMessageDelivered carries MessageDelivered, core → notification, keyed by room id.
	TopicMessageDelivered = "chat.message_delivered"
	// TopicMessageRejected carries MessageRejected, core → notification, keyed by room id
	// (or by sender id when the room is unknown).
	TopicMessageRejected = "chat.message_rejected"
	// TopicReceipt carries Receipt, gateway → core, keyed by room id.
	TopicReceipt = "chat.receipt"
	// TopicReceiptUpdated carries ReceiptUpdated, core → notification, keyed by room id.
	TopicReceiptUpdated = "chat.receipt_updated"
)

// Topics lists every topic, for creating them at start.
func Topics() []string {
	return []string{TopicMessageSent, TopicMessageDelivered, TopicMessageRejected, TopicReceipt, TopicReceiptUpdated, TopicMessageUpdated}
}

// Reason is why a message or a request was refused. The codes are stable strings: the
// bus carries them and the WebSocket and HTTP edges show them to clients.
type Reason string

// Reason codes.
const (
	ReasonNotMember       Reason = "not_member"        // the sender is not a member of the room
	ReasonBlocked         Reason = "blocked"           // a block forbids the message (DM with a blocker)
	ReasonMessageTooLarge Reason = "message_too_large" // body above the configured size
	ReasonEmptyMessage    Reason = "empty_message"     // neither body nor attachments
	ReasonRateLimited     Reason = "rate_limited"      // the sender sends too fast
	ReasonRoomNotFound    Reason = "room_not_found"    // no such room
	ReasonInvalid         Reason = "invalid"           // malformed event or fields
)

// Reasons lists every reason code, so that edges and tests can check they handle them all.
func Reasons() []Reason {
	return []Reason{ReasonNotMember, ReasonBlocked, ReasonMessageTooLarge, ReasonEmptyMessage,
		ReasonRateLimited, ReasonRoomNotFound, ReasonInvalid}
}

// Valid reports whether r is one of the defined codes.
func (r Reason) Valid() bool {
	for _, known := range Reasons() {
		if r == known {
			return true
		}
	}
	return false
}
