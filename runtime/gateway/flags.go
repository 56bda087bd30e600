package gateway

import "flag"

// RegisterFlags registers every limit of the gateway on fs (the role's flag set, so each
// also reads PARLEY_<NAME>), with c's values as defaults. The id, the allowed origins,
// the message rate (core's --messages-per-second) and the heartbeat (from the presence
// TTL) are the role's to set.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxFrameBytes, "max-frame-bytes", c.MaxFrameBytes, "largest client frame; a larger one closes the connection (1009)")
	fs.IntVar(&c.SendQueue, "send-queue", c.SendQueue, "frames queued per connection before a slow client is dropped (4008 slow_consumer)")
	fs.Float64Var(&c.FramesPerSecond, "frames-per-second", c.FramesPerSecond, "frames per second per user, across devices (pings included)")
	fs.IntVar(&c.Burst, "frame-burst", c.Burst, "frames a user may send at once above --frames-per-second")
	fs.IntVar(&c.MessageBurst, "message-burst", c.MessageBurst, "send frames a user may send at once above --messages-per-second (0: twice the rate)")
	fs.DurationVar(&c.PingInterval, "ping-interval", c.PingInterval, "how often the server pings each connection; silent for twice as long closes it")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "how long writes to one socket may stay blocked before the client is dropped as slow (the deadline is renewed once half of it has passed, so a write gets between half of it and all of it)")
	fs.IntVar(&c.SocketSendBuffer, "socket-send-buffer", c.SocketSendBuffer, "kernel send buffer per connection, in bytes")
	fs.IntVar(&c.ReadBufferBytes, "read-buffer-bytes", c.ReadBufferBytes, "read buffer per connection, in bytes (held for the connection's life)")
	fs.IntVar(&c.ResumeLimit, "resume-limit", c.ResumeLimit, "messages (and room events) replayed per room on resume")
	fs.DurationVar(&c.ReconnectAfter, "reconnect-after", c.ReconnectAfter, "reconnect delay advised to clients when the gateway drains")
	fs.IntVar(&c.Shards, "hub-shards", c.Shards, "locks of the connection table")
	fs.DurationVar(&c.PresenceInterval, "presence-interval", c.PresenceInterval, "at most one presence_batch frame per connection per interval")
	fs.IntVar(&c.PresenceLargeGroup, "presence-large-group", c.PresenceLargeGroup, "groups with more members do not announce their members' presence (clients watch what they show)")
}
