package presence

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps presence in Redis so every gateway and notification process sees it.
//
// Keys (prefix p: by default):
//
//	p:u:<user>  sorted set of "gateway|conn", scored by expiry (unix ms)
//	p:g:<gw>    set of "user|conn" held by a gateway, for heartbeats
//	p:exp       sorted set of "user|gateway|conn" by expiry, for the sweeper
//	p:t:<room>|<user>  typing throttle window (SET NX PX)
//
// Expiry lives in scores computed from Config.Now rather than in key TTLs, so a whole
// user's devices expire individually and the sweeper can tell who went offline. Each
// mutation is one Lua script, so concurrent gateways never see half an update. Keys also
// get a generous PEXPIRE so that nothing outlives a forgotten deployment.
type Redis struct {
	rdb    redis.UniversalClient
	cfg    Config
	prefix string
}

// NewRedis returns a tracker over rdb with keys under prefix ("p:" when empty).
func NewRedis(rdb redis.UniversalClient, prefix string, cfg Config) *Redis {
	if prefix == "" {
		prefix = "p:"
	}
	return &Redis{rdb: rdb, cfg: cfg.withDefaults(), prefix: prefix}
}

func (r *Redis) userKey(u string) string { return r.prefix + "u:" + u }
func (r *Redis) gwKey(g string) string   { return r.prefix + "g:" + g }
func (r *Redis) expKey() string          { return r.prefix + "exp" }

func (r *Redis) nowMS() int64 { return r.cfg.Now().UnixMilli() }

// garbageMS is how long keys survive without being touched at all.
func (r *Redis) garbageMS() int64 { return 10 * r.cfg.TTL.Milliseconds() }

// dropExpired removes the user's expired members everywhere. Shared by connect.
const dropExpiredLua = `
local function drop_expired(ukey, user, now, expkey, prefix)
  local dead = redis.call('ZRANGEBYSCORE', ukey, '-inf', now)
  for _, m in ipairs(dead) do
    local sep = string.find(m, '|', 1, true)
    local gw, conn = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    redis.call('ZREM', ukey, m)
    redis.call('SREM', prefix .. 'g:' .. gw, user .. '|' .. conn)
    redis.call('ZREM', expkey, user .. '|' .. m)
  end
end
`

// KEYS: user, gateway, exp. ARGV: user, gateway, conn, now, expiry, garbage ms, prefix.
var connectScript = redis.NewScript(dropExpiredLua + `
drop_expired(KEYS[1], ARGV[1], ARGV[4], KEYS[3], ARGV[7])
local was = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[4], '+inf')
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2] .. '|' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1] .. '|' .. ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if was == 0 then return 1 end
return 0
`)

// Connect records c as live until TTL from now; cameOnline tells whether the user had no
// live connection before.
func (r *Redis) Connect(ctx context.Context, c Conn) (bool, error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	now := r.nowMS()
	n, err := connectScript.Run(ctx, r.rdb,
		[]string{r.userKey(c.UserID), r.gwKey(c.GatewayID), r.expKey()},
		c.UserID, c.GatewayID, c.ConnID, now, now+r.cfg.TTL.Milliseconds(), r.garbageMS(), r.prefix,
	).Int()
	if err != nil {
		return false, fmt.Errorf("presence connect %s: %w", c.UserID, err)
	}
	return n == 1, nil
}

// KEYS: user, gateway, exp. ARGV: user, gateway, conn, now.
var disconnectScript = redis.NewScript(`
local member = ARGV[2] .. '|' .. ARGV[3]
local score = redis.call('ZSCORE', KEYS[1], member)
if not score then return 0 end
redis.call('ZREM', KEYS[1], member)
redis.call('SREM', KEYS[2], ARGV[1] .. '|' .. ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1] .. '|' .. member)
if tonumber(score) <= tonumber(ARGV[4]) then return 0 end
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[4], '+inf') == 0 then return 1 end
return 0
`)

// Disconnect forgets c; wentOffline tells whether it was the user's last live connection.
func (r *Redis) Disconnect(ctx context.Context, c Conn) (bool, error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	n, err := disconnectScript.Run(ctx, r.rdb,
		[]string{r.userKey(c.UserID), r.gwKey(c.GatewayID), r.expKey()},
		c.UserID, c.GatewayID, c.ConnID, r.nowMS(),
	).Int()
	if err != nil {
		return false, fmt.Errorf("presence disconnect %s: %w", c.UserID, err)
	}
	return n == 1, nil
}

// heartbeatBatch bounds the connections one heartbeat script touches, so a big gateway
// never blocks Redis for long.
const heartbeatBatch = 500

// KEYS: gateway, exp. ARGV: gateway, now, expiry, garbage ms, prefix, then "user|conn" of
// each held connection. Returns the users who had no live connection and got one back.
var reassertScript = redis.NewScript(`
local gw, now, expiry, garbage, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local livebefore, reported, online = {}, {}, {}
for i = 6, #ARGV do
  local m = ARGV[i]
  local sep = string.find(m, '|', 1, true)
  local user, conn = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  local ukey = prefix .. 'u:' .. user
  if livebefore[user] == nil then
    livebefore[user] = redis.call('ZCOUNT', ukey, '(' .. now, '+inf') > 0
  end
  local added = redis.call('ZADD', ukey, expiry, gw .. '|' .. conn)
  redis.call('SADD', KEYS[1], m)
  redis.call('ZADD', KEYS[2], expiry, user .. '|' .. gw .. '|' .. conn)
  redis.call('PEXPIRE', ukey, garbage)
  if added == 1 and not livebefore[user] and not reported[user] then
    reported[user] = true
    table.insert(online, user)
  end
end
redis.call('PEXPIRE', KEYS[1], garbage)
return online
`)

// KEYS: gateway, exp. ARGV: gateway, now, prefix, then "user|conn" of each connection the
// gateway no longer holds. Each is expired now (left for the sweeper, which announces
// who went offline); one with no entry left is simply forgotten.
var expireScript = redis.NewScript(`
local gw, now, prefix = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local m = ARGV[i]
  local sep = string.find(m, '|', 1, true)
  local user, conn = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  local ukey = prefix .. 'u:' .. user
  local member = gw .. '|' .. conn
  local score = redis.call('ZSCORE', ukey, member)
  if not score then
    redis.call('SREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], user .. '|' .. member)
  elseif tonumber(score) > tonumber(now) then
    redis.call('ZADD', ukey, now, member)
    redis.call('ZADD', KEYS[2], now, user .. '|' .. member)
  else
    redis.call('ZADD', KEYS[2], score, user .. '|' .. member)
  end
end
return 0
`)

// AliveKey (under the prefix) holds the time, in unix ms, of the first heartbeat since
// Redis last lost its data. Heartbeats set it when missing, so a Redis restarted empty
// shows as a missing or young key until every gateway had the time to re-assert what
// it holds: readers treat presence as incomplete meanwhile (notification.PresenceGuard).
const AliveKey = "alive"

// Heartbeat makes held exactly the live connections of gatewayID. Each held connection is
// extended to TTL from now, and re-added when missing (a sweep took it after a missed
// heartbeat, or its Connect failed); every other connection recorded for gatewayID (a
// previous incarnation's after a restart in place, or one whose Disconnect was lost) is
// expired now, so the next sweep announces it. It returns, sorted, the users who had no
// live connection and have one again: announce them online.
func (r *Redis) Heartbeat(ctx context.Context, gatewayID string, held []Conn) ([]string, error) {
	if err := checkHeld(gatewayID, held); err != nil {
		return nil, err
	}
	now := r.nowMS()
	expiry := now + r.cfg.TTL.Milliseconds()
	keys := []string{r.gwKey(gatewayID), r.expKey()}
	members := heldMembers(held)
	online := map[string]bool{}
	for start := 0; start < len(members); start += heartbeatBatch {
		chunk := members[start:min(start+heartbeatBatch, len(members))]
		args := append([]any{gatewayID, now, expiry, r.garbageMS(), r.prefix}, toAny(chunk)...)
		users, err := reassertScript.Run(ctx, r.rdb, keys, args...).StringSlice()
		if err != nil && err != redis.Nil {
			return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
		}
		for _, u := range users {
			online[u] = true
		}
	}
	recorded, err := r.rdb.SMembers(ctx, r.gwKey(gatewayID)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
	}
	keep := make(map[string]bool, len(members))
	for _, m := range members {
		keep[m] = true
	}
	var stale []string
	for _, m := range recorded {
		if !keep[m] && strings.Contains(m, sep) {
			stale = append(stale, m)
		}
	}
	for start := 0; start < len(stale); start += heartbeatBatch {
		chunk := stale[start:min(start+heartbeatBatch, len(stale))]
		args := append([]any{gatewayID, now, r.prefix}, toAny(chunk)...)
		if err := expireScript.Run(ctx, r.rdb, keys, args...).Err(); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
		}
	}
	// After the gateway's connections are back, never before: the key says presence is
	// being rebuilt, not that it is complete.
	if err := r.rdb.SetNX(ctx, r.prefix+AliveKey, now, 0).Err(); err != nil {
		return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
	}
	return sortedKeys(online), nil
}

// KEYS: exp. ARGV: gateway, now, prefix, then users. Each user's entries on gateway are
// expired now: gone for Gateways at once, left for the sweeper to announce offline.
var pruneScript = redis.NewScript(`
local gw, now, prefix = ARGV[1], ARGV[2], ARGV[3]
local head = gw .. '|'
for i = 4, #ARGV do
  local user = ARGV[i]
  local ukey = prefix .. 'u:' .. user
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ukey, '(' .. now, '+inf')) do
    if string.sub(m, 1, #head) == head then
      redis.call('ZADD', ukey, now, m)
      redis.call('ZADD', KEYS[1], now, user .. '|' .. m)
    end
  end
end
return 0
`)

// Prune expires userIDs' connections on gatewayID now: a routed delivery to it reached
// no subscriber, so the gateway is dead or resubscribing (a live one re-adds what it
// holds at its next heartbeat). Users are handled heartbeatBatch at a time.
func (r *Redis) Prune(ctx context.Context, gatewayID string, userIDs []string) error {
	if err := checkIDs(append([]string{gatewayID}, userIDs...)...); err != nil {
		return err
	}
	now := r.nowMS()
	for start := 0; start < len(userIDs); start += heartbeatBatch {
		chunk := userIDs[start:min(start+heartbeatBatch, len(userIDs))]
		args := append([]any{gatewayID, now, r.prefix}, toAny(chunk)...)
		if err := pruneScript.Run(ctx, r.rdb, []string{r.expKey()}, args...).Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("presence prune %s: %w", gatewayID, err)
		}
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// sweepBatch bounds one script run so a mass expiry never blocks Redis for long.
const sweepBatch = 500

// KEYS: exp. ARGV: now, prefix, limit. Returns the users who went offline.
var sweepScript = redis.NewScript(`
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local touched, order = {}, {}
for _, m in ipairs(dead) do
  local a = string.find(m, '|', 1, true)
  local b = string.find(m, '|', a + 1, true)
  local user, gw, conn = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1), string.sub(m, b + 1)
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', ARGV[2] .. 'u:' .. user, gw .. '|' .. conn)
  redis.call('SREM', ARGV[2] .. 'g:' .. gw, user .. '|' .. conn)
  if not touched[user] then touched[user] = true; table.insert(order, user) end
end
local offline = {}
for _, user in ipairs(order) do
  if redis.call('ZCOUNT', ARGV[2] .. 'u:' .. user, '(' .. ARGV[1], '+inf') == 0 then
    table.insert(offline, user)
  end
end
return {#dead, offline}
`)

// Sweep forgets connections whose gateway stopped heartbeating and reports the users who
// went offline because of it, each once, sorted. Any process may run it; the script makes
// sure each expiry is reported by exactly one sweeper.
func (r *Redis) Sweep(ctx context.Context) ([]Transition, error) {
	now := r.nowMS()
	seen := map[string]bool{}
	for {
		res, err := sweepScript.Run(ctx, r.rdb, []string{r.expKey()}, now, r.prefix, sweepBatch).Slice()
		if err != nil {
			return nil, fmt.Errorf("presence sweep: %w", err)
		}
		n, _ := res[0].(int64)
		users, _ := res[1].([]any)
		for _, u := range users {
			if s, ok := u.(string); ok {
				seen[s] = true
			}
		}
		if n < sweepBatch {
			break
		}
	}
	out := make([]Transition, 0, len(seen))
	for u := range seen {
		out = append(out, Transition{UserID: u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// Gateways returns, for each user with a live connection, the sorted gateways holding one.
func (r *Redis) Gateways(ctx context.Context, userIDs []string) (map[string][]string, error) {
	now := r.nowMS()
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(userIDs))
	for i, u := range userIDs {
		cmds[i] = pipe.ZRangeByScore(ctx, r.userKey(u), &redis.ZRangeBy{Min: fmt.Sprintf("(%d", now), Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("presence gateways: %w", err)
	}
	return gatewaysOf(userIDs, cmds), nil
}

// GatewaysAlive is Gateways read together with AliveKey, in one pipeline on one
// connection: both answers come from the same Redis incarnation, so a Redis that
// restarted empty between "presence is complete" and "these users are offline" cannot
// pass for the old one (a connection does not survive a restart). aliveSince is the
// first heartbeat since Redis last lost its data, zero when none ran yet.
//
// With Redis Cluster the pipeline may span nodes; each node's answer is still of one
// incarnation of that node, not of the node holding AliveKey.
func (r *Redis) GatewaysAlive(ctx context.Context, userIDs []string) (map[string][]string, time.Time, error) {
	now := r.nowMS()
	pipe := r.rdb.Pipeline()
	alive := pipe.Get(ctx, r.prefix+AliveKey)
	cmds := make([]*redis.StringSliceCmd, len(userIDs))
	for i, u := range userIDs {
		cmds[i] = pipe.ZRangeByScore(ctx, r.userKey(u), &redis.ZRangeBy{Min: fmt.Sprintf("(%d", now), Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, time.Time{}, fmt.Errorf("presence gateways: %w", err)
	}
	var since time.Time
	if v, err := alive.Result(); err == nil {
		ms, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			return nil, time.Time{}, fmt.Errorf("presence state %q: %w", v, perr)
		}
		since = time.UnixMilli(ms)
	}
	return gatewaysOf(userIDs, cmds), since, nil
}

func gatewaysOf(userIDs []string, cmds []*redis.StringSliceCmd) map[string][]string {
	out := map[string][]string{}
	for i, u := range userIDs {
		seen := map[string]bool{}
		for _, m := range cmds[i].Val() {
			gw, _, _ := strings.Cut(m, sep)
			if !seen[gw] {
				seen[gw] = true
				out[u] = append(out[u], gw)
			}
		}
		sort.Strings(out[u])
	}
	return out
}

// KEYS: typing key. ARGV: now, window end, garbage ms.
var typingScript = redis.NewScript(`
local ends = redis.call('GET', KEYS[1])
if ends and tonumber(ends) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// Typing reports whether a typing signal of userID in roomID should be forwarded now. The
// window end is stored as a value from Config.Now (the key's own TTL only collects
// garbage), so both implementations follow the same clock.
func (r *Redis) Typing(ctx context.Context, userID, roomID string) (bool, error) {
	if err := checkIDs(userID, roomID); err != nil {
		return false, err
	}
	now := r.nowMS()
	throttle := r.cfg.TypingThrottle.Milliseconds()
	n, err := typingScript.Run(ctx, r.rdb, []string{r.prefix + "t:" + roomID + sep + userID},
		now, now+throttle, 2*throttle).Int()
	if err != nil {
		return false, fmt.Errorf("presence typing: %w", err)
	}
	return n == 1, nil
}
