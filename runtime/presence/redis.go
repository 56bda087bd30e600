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

// Redis keeps presence in Redis so every gateway and notification process sees it. It
// works the same on one Redis server and on a Redis Cluster (redis.ClusterClient).
//
// Keys (prefix p: by default):
//
//	p:{u:<user>}  sorted set of "gateway|conn", scored by expiry (unix ms)
//	p:{g:<gw>}    sorted set of "user|conn" the gateway holds, scored by expiry: the
//	              gateway's heartbeat set and its expiry index for the sweeper
//	p:gws         sorted set of gateway ids, scored by when each last registered
//	              (heartbeat, or first connection): where the sweeper finds the indexes
//	p:alive       first heartbeat since Redis last lost its data (AliveKey)
//	p:t:<room>|<user>  typing throttle window (SET NX PX)
//
// Every script touches only the keys it declares, all in one hash slot: the part in
// braces is the key's hash tag, so one user's or one gateway's keys live on one cluster
// node. An update of both sides (connect, disconnect, heartbeat, sweep, prune) is two
// slot-local steps, ordered so that a crash between them leaves nothing a reader trusts
// wrongly and nothing the sweeper cannot find:
//   - adding: the gateway's index first, then the user's entry; an index entry without
//     a user entry is cleaned by the sweeper without announcing anything;
//   - removing or expiring: the user's entry first (readers see it at once), then the
//     index; a leftover index entry is re-handled by the next heartbeat or sweep.
//
// The user's entry alone decides what readers and announcements see: the sweeper
// announces a user offline only when its ZREM of an expired entry removed something,
// so each expiry is announced once whatever the order of steps and sweepers.
//
// Expiry lives in scores computed from Config.Now rather than in key TTLs, so a whole
// user's devices expire individually and the sweeper can tell who went offline. Keys also
// get a generous PEXPIRE so that nothing outlives a forgotten deployment. Per-user steps
// of a batch go in one pipeline: on a cluster go-redis splits it into one round trip per
// node.
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

// GatewaysKey (under the prefix) is the sorted set of gateways that registered an
// expiry index; it is non-empty once any connection was recorded.
const GatewaysKey = "gws"

func (r *Redis) userKey(u string) string { return r.prefix + "{u:" + u + "}" }
func (r *Redis) gwKey(g string) string   { return r.prefix + "{g:" + g + "}" }
func (r *Redis) gwsKey() string          { return r.prefix + GatewaysKey }

// GatewayTag is the hash tag of gatewayID's presence keys ("{g:<id>}"): a channel named
// with it (notification.RedisRoutes) lives on the same cluster node as the gateway's index.
func GatewayTag(gatewayID string) string { return "{g:" + gatewayID + "}" }

func (r *Redis) nowMS() int64 { return r.cfg.Now().UnixMilli() }

// garbageMS is how long keys survive without being touched at all.
func (r *Redis) garbageMS() int64 { return 10 * r.cfg.TTL.Milliseconds() }

// KEYS: gateway index. ARGV: expiry, garbage ms, then "user|conn" members. Returns 1 when
// the index was empty before (the gateway must be registered in GatewaysKey).
var gwAddScript = redis.NewScript(`
local before = redis.call('ZCARD', KEYS[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if before == 0 then return 1 end
return 0
`)

// KEYS: user. ARGV: now, expiry, garbage ms, "gateway|conn". Expired entries are dropped
// unannounced: the user is coming online anyway.
var connectScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local was = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
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
	expiry := now + r.cfg.TTL.Milliseconds()
	if err := r.gwAdd(ctx, c.GatewayID, now, expiry, []string{c.UserID + sep + c.ConnID}); err != nil {
		return false, fmt.Errorf("presence connect %s: %w", c.UserID, err)
	}
	n, err := connectScript.Run(ctx, r.rdb, []string{r.userKey(c.UserID)},
		now, expiry, r.garbageMS(), c.GatewayID+sep+c.ConnID).Int()
	if err != nil {
		return false, fmt.Errorf("presence connect %s: %w", c.UserID, err)
	}
	return n == 1, nil
}

// gwAdd records members in the gateway's index until expiry, registering the gateway when
// its index was empty.
func (r *Redis) gwAdd(ctx context.Context, gatewayID string, now, expiry int64, members []string) error {
	args := append([]any{expiry, r.garbageMS()}, toAny(members)...)
	first, err := gwAddScript.Run(ctx, r.rdb, []string{r.gwKey(gatewayID)}, args...).Int()
	if err != nil {
		return err
	}
	if first == 1 {
		return r.register(ctx, gatewayID, now)
	}
	return nil
}

func (r *Redis) register(ctx context.Context, gatewayID string, now int64) error {
	return r.rdb.ZAdd(ctx, r.gwsKey(), redis.Z{Score: float64(now), Member: gatewayID}).Err()
}

// KEYS: user. ARGV: "gateway|conn", now. Returns 1 when it was the last live entry.
var disconnectScript = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= tonumber(ARGV[2]) then return 0 end
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf') == 0 then return 1 end
return 0
`)

// Disconnect forgets c; wentOffline tells whether it was the user's last live connection.
func (r *Redis) Disconnect(ctx context.Context, c Conn) (bool, error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	n, err := disconnectScript.Run(ctx, r.rdb, []string{r.userKey(c.UserID)}, c.GatewayID+sep+c.ConnID, r.nowMS()).Int()
	if err != nil {
		return false, fmt.Errorf("presence disconnect %s: %w", c.UserID, err)
	}
	if err := r.rdb.ZRem(ctx, r.gwKey(c.GatewayID), c.UserID+sep+c.ConnID).Err(); err != nil {
		return false, fmt.Errorf("presence disconnect %s: %w", c.UserID, err)
	}
	return n == 1, nil
}

// heartbeatBatch bounds the connections one step of a heartbeat, prune or sweep carries
// (one script, or one pipeline of per-user scripts), so a big gateway never blocks Redis
// for long.
const heartbeatBatch = 500

// KEYS: user. ARGV: now, expiry, garbage ms, then "gateway|conn" members. Returns 1 when
// the user had no live entry and got one back.
var reassertScript = redis.NewScript(`
local live = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf') > 0
local added = 0
for i = 4, #ARGV do added = added + redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if added > 0 and not live then return 1 end
return 0
`)

// KEYS: user. ARGV: now, then "gateway|conn" members: each live one is expired now, left
// for the sweeper to announce.
var expireScript = redis.NewScript(`
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
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
	// Registered before anything is indexed, so the sweeper always finds the index.
	if err := r.register(ctx, gatewayID, now); err != nil {
		return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
	}
	members := heldMembers(held)
	online := map[string]bool{}
	for _, chunk := range chunks(members, heartbeatBatch) {
		if err := r.gwAdd(ctx, gatewayID, now, expiry, chunk); err != nil {
			return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
		}
		users, calls := r.perUserCalls(chunk, gatewayID, func(string) []any { return []any{now, expiry, r.garbageMS()} })
		res, err := r.runEach(ctx, reassertScript, calls)
		if err != nil {
			return nil, fmt.Errorf("presence heartbeat %s: %w", gatewayID, err)
		}
		for i, cmd := range res {
			if n, _ := cmd.Int(); n == 1 {
				online[users[i]] = true
			}
		}
	}
	recorded, err := r.rdb.ZRange(ctx, r.gwKey(gatewayID), 0, -1).Result()
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
	sort.Strings(stale)
	for _, chunk := range chunks(stale, heartbeatBatch) {
		if err := r.expireBoth(ctx, gatewayID, now, chunk); err != nil {
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

// expireBoth expires the "user|conn" members (sorted by user) of gatewayID now: the
// users' entries first, then the index, where the sweeper finds them.
func (r *Redis) expireBoth(ctx context.Context, gatewayID string, now int64, members []string) error {
	_, calls := r.perUserCalls(members, gatewayID, func(string) []any { return []any{now} })
	if _, err := r.runEach(ctx, expireScript, calls); err != nil {
		return err
	}
	// XX LT: never re-add what a disconnect or sweep removed meanwhile, never delay.
	zs := make([]redis.Z, len(members))
	for i, m := range members {
		zs[i] = redis.Z{Score: float64(now), Member: m}
	}
	return r.rdb.ZAddArgs(ctx, r.gwKey(gatewayID), redis.ZAddArgs{XX: true, LT: true, Members: zs}).Err()
}

// KEYS: user. ARGV: now, "gateway|". Each live entry on the gateway is expired now; returns
// the connection ids expired.
var pruneScript = redis.NewScript(`
local head, out = ARGV[2], {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  if string.sub(m, 1, #head) == head then
    redis.call('ZADD', KEYS[1], ARGV[1], m)
    table.insert(out, string.sub(m, #head + 1))
  end
end
return out
`)

// Prune expires userIDs' connections on gatewayID now: a routed delivery to it reached
// no subscriber, so the gateway is dead or resubscribing (a live one re-adds what it
// holds at its next heartbeat). Users are handled heartbeatBatch at a time.
func (r *Redis) Prune(ctx context.Context, gatewayID string, userIDs []string) error {
	if err := checkIDs(append([]string{gatewayID}, userIDs...)...); err != nil {
		return err
	}
	now := r.nowMS()
	for _, chunk := range chunks(userIDs, heartbeatBatch) {
		calls := make([]scriptCall, len(chunk))
		for i, u := range chunk {
			calls[i] = scriptCall{keys: []string{r.userKey(u)}, args: []any{now, gatewayID + sep}}
		}
		res, err := r.runEach(ctx, pruneScript, calls)
		if err != nil {
			return fmt.Errorf("presence prune %s: %w", gatewayID, err)
		}
		var zs []redis.Z
		for i, cmd := range res {
			conns, _ := cmd.StringSlice()
			for _, c := range conns {
				zs = append(zs, redis.Z{Score: float64(now), Member: chunk[i] + sep + c})
			}
		}
		if len(zs) == 0 {
			continue
		}
		if err := r.rdb.ZAddArgs(ctx, r.gwKey(gatewayID), redis.ZAddArgs{XX: true, LT: true, Members: zs}).Err(); err != nil {
			return fmt.Errorf("presence prune %s: %w", gatewayID, err)
		}
	}
	return nil
}

// sweepBatch bounds the expired entries taken from one gateway's index per round.
const sweepBatch = 500

// KEYS: user. ARGV: now, then "gateway|conn" members found expired in the indexes.
// Returns 1 when this call removed an expired entry and none live is left: the user went
// offline, reported by exactly one sweeper.
var sweepUserScript = redis.NewScript(`
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
if removed > 0 and redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf') == 0 then return 1 end
return 0
`)

// KEYS: gateway index. ARGV: now, then "user|conn" members. Removes those still expired
// (a heartbeat may have extended one meanwhile); returns what is left in the index.
var sweepGwScript = redis.NewScript(`
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return redis.call('ZCARD', KEYS[1])
`)

// KEYS: gateways. ARGV: gateway, registered before (ms). Forgets a gateway with an empty
// index unless it registered again since.
var forgetGwScript = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)

// Sweep forgets connections whose gateway stopped heartbeating and reports the users who
// went offline because of it, each once, sorted. Any process may run it; the scripts make
// sure each expiry is reported by exactly one sweeper.
func (r *Redis) Sweep(ctx context.Context) ([]Transition, error) {
	now := r.nowMS()
	gws, err := r.rdb.ZRangeWithScores(ctx, r.gwsKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("presence sweep: %w", err)
	}
	registered := make(map[string]float64, len(gws))
	for _, z := range gws {
		if g, ok := z.Member.(string); ok {
			registered[g] = z.Score
		}
	}
	seen := map[string]bool{}
	for len(registered) > 0 {
		more, err := r.sweepRound(ctx, now, registered, seen)
		if err != nil {
			return nil, fmt.Errorf("presence sweep: %w", err)
		}
		registered = more
	}
	out := make([]Transition, 0, len(seen))
	for u := range seen {
		out = append(out, Transition{UserID: u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// sweepRound takes up to sweepBatch expired entries from each gateway's index, removes
// them from their users (recording in offline who went offline) and then from the index.
// It returns the gateways that may hold more.
func (r *Redis) sweepRound(ctx context.Context, now int64, gws map[string]float64, offline map[string]bool) (map[string]float64, error) {
	names := make([]string, 0, len(gws))
	for g := range gws {
		names = append(names, g)
	}
	sort.Strings(names)
	pipe := r.rdb.Pipeline()
	found := make([]*redis.StringSliceCmd, len(names))
	for i, g := range names {
		found[i] = pipe.ZRangeByScore(ctx, r.gwKey(g), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now, 10), Count: sweepBatch})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	// Users first: "user" → its expired "gateway|conn" entries.
	byUser := map[string][]any{}
	for i, g := range names {
		for _, m := range found[i].Val() {
			u, c, ok := strings.Cut(m, sep)
			if ok {
				byUser[u] = append(byUser[u], g+sep+c)
			}
		}
	}
	users := sortedKeys(toSet(byUser))
	for _, chunk := range chunks(users, heartbeatBatch) {
		calls := make([]scriptCall, len(chunk))
		for i, u := range chunk {
			calls[i] = scriptCall{keys: []string{r.userKey(u)}, args: append([]any{now}, byUser[u]...)}
		}
		res, err := r.runEach(ctx, sweepUserScript, calls)
		if err != nil {
			return nil, err
		}
		for i, cmd := range res {
			if n, _ := cmd.Int(); n == 1 {
				offline[chunk[i]] = true
			}
		}
	}
	// Then the indexes, and the gateways left with none.
	calls := make([]scriptCall, len(names))
	for i, g := range names {
		calls[i] = scriptCall{keys: []string{r.gwKey(g)}, args: append([]any{now}, toAny(found[i].Val())...)}
	}
	res, err := r.runEach(ctx, sweepGwScript, calls)
	if err != nil {
		return nil, err
	}
	more := map[string]float64{}
	deadBefore := now - r.cfg.TTL.Milliseconds()
	for i, g := range names {
		left, _ := res[i].Int()
		switch {
		case len(found[i].Val()) == sweepBatch:
			more[g] = gws[g]
		case left == 0 && gws[g] < float64(deadBefore):
			// No heartbeat for a TTL and nothing indexed: a gone gateway (ids are per boot).
			if err := forgetGwScript.Run(ctx, r.rdb, []string{r.gwsKey()}, g, deadBefore).Err(); err != nil {
				return nil, err
			}
		}
	}
	return more, nil
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

// GatewaysAlive is Gateways read together with AliveKey, in one pipeline: on one Redis
// server both answers come from the same incarnation, so a Redis that restarted empty
// between "presence is complete" and "these users are offline" cannot pass for the old
// one (a connection does not survive a restart). aliveSince is the first heartbeat since
// Redis last lost its data, zero when none ran yet.
//
// On Redis Cluster the pipeline goes out as one round trip per node holding a user; each
// node's answer is of one incarnation of that node, not of the node holding AliveKey. A
// primary that lost its data without a replica taking over loses the presence of its
// slots until the gateways re-assert (their routed subscriptions on that node drop,
// which makes them heartbeat at once); deliveries meanwhile fall back to push.
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

// scriptCall is one run of a script: its keys (one slot) and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// runEach runs script once per call in one pipeline (one round trip per node on a
// cluster). A node without the script cached (first use, or after a restart or
// failover) answers NOSCRIPT: the script is then loaded on every node and those calls
// sent again, one by one with EVAL as a last resort.
func (r *Redis) runEach(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	cmds := r.pipeSha(ctx, script, calls)
	var missing []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && err != redis.Nil {
			if !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return nil, err
			}
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return cmds, nil
	}
	if err := script.Load(ctx, r.rdb).Err(); err != nil {
		return nil, err
	}
	again := make([]scriptCall, len(missing))
	for j, i := range missing {
		again[j] = calls[i]
	}
	for j, cmd := range r.pipeSha(ctx, script, again) {
		i := missing[j]
		cmds[i] = cmd
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			cmds[i] = script.Run(ctx, r.rdb, calls[i].keys, calls[i].args...)
		}
		if err := cmds[i].Err(); err != nil && err != redis.Nil {
			return nil, err
		}
	}
	return cmds, nil
}

func (r *Redis) pipeSha(ctx context.Context, script *redis.Script, calls []scriptCall) []*redis.Cmd {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is checked by the caller
	return cmds
}

// perUserCalls groups "user|conn" members (sorted by user) into one script call per user over
// "gatewayID|conn" entries, each call's arguments led by head(user). It returns the
// users in call order.
func (r *Redis) perUserCalls(members []string, gatewayID string, head func(string) []any) ([]string, []scriptCall) {
	var users []string
	var calls []scriptCall
	for _, m := range members {
		u, c, _ := strings.Cut(m, sep)
		if len(users) == 0 || users[len(users)-1] != u {
			users = append(users, u)
			calls = append(calls, scriptCall{keys: []string{r.userKey(u)}, args: head(u)})
		}
		last := &calls[len(calls)-1]
		last.args = append(last.args, gatewayID+sep+c)
	}
	return users, calls
}

func chunks(ss []string, n int) [][]string {
	var out [][]string
	for start := 0; start < len(ss); start += n {
		out = append(out, ss[start:min(start+n, len(ss))])
	}
	return out
}

func toSet[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
