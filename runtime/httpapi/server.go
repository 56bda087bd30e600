// Package httpapi is the REST API of `parley core`: /api/v1 handlers with bearer auth,
// JSON errors {"code","message"}, request size limits and strict decoding, plus
// /healthz, /readyz and /metrics. Every route is listed in openapi.yaml; a test keeps the
// two in step.
package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the API description served at /api/v1/openapi.yaml.
func OpenAPI() []byte { return openAPI }

// DefaultMaxBodyBytes bounds every request body; message bodies are far smaller.
const DefaultMaxBodyBytes = 64 << 10

// Config is what the server needs.
type Config struct {
	Users        *users.Service
	Chat         *chat.Service
	Logger       *slog.Logger
	Registry     *prometheus.Registry // /metrics serves it; nil: a fresh one
	Metrics      *Metrics             // nil: registered on Registry
	MaxBodyBytes int64                // 0: DefaultMaxBodyBytes
	// Events hears what the REST API changed, so real-time clients see it too; nil: nobody.
	Events Events
	// Push keeps Web Push subscriptions; nil: the push endpoints answer push_disabled.
	Push PushSubscriptions
	// TrustedProxies are the networks whose X-Forwarded-For is believed (the ingress
	// controller's); empty: the peer address is the client's.
	TrustedProxies []*net.IPNet
}

// Events is told about receipts moved and messages changed through the REST API (the
// WebSocket path announces its own through the bus). Failures are logged, not returned:
// the write itself succeeded and clients resume from history. Messages stored are not
// here: the chat store's outbox announces them, whichever path stored them.
type Events interface {
	ReceiptMoved(ctx context.Context, r chat.Receipt) error
	// MessageChanged announces a recorded room event (an edit or a deletion).
	MessageChanged(ctx context.Context, ev chat.RoomEvent) error
}

// ReadinessCheck is one condition /readyz requires.
type ReadinessCheck func(ctx context.Context) error

// Server is the REST API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	routes  []Route
	metrics *Metrics

	mu     sync.Mutex
	checks map[string]ReadinessCheck
	names  []string
}

// Route is one served endpoint, as OpenAPI spells it.
type Route struct {
	Method string
	Path   string
	Auth   bool
	handle handler
}

// handler returns the status and the JSON body (nil: no body) or an error.
type handler func(r *http.Request, me string) (int, any, error)

// New builds the server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), checks: map[string]ReadinessCheck{}}
	s.metrics = cfg.Metrics
	if s.metrics == nil {
		s.metrics = NewMetrics(cfg.Registry)
	}
	s.routes = s.apiRoutes()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPI)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorBody{Code: "not_found", Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return s
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return securityHeaders(s.mux) }

// securityHeaders marks every API response as what it is: never sniffed into another
// type, never framed, loading nothing, and not leaking its URL as a referrer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// Routes lists every served method and path, as OpenAPI spells them (the OpenAPI test
// holds the document to this list and this list to the live handler).
func (s *Server) Routes() []Route {
	out := append([]Route(nil), s.routes...)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.yaml"} {
		out = append(out, Route{Method: "GET", Path: p})
	}
	return out
}

// Metrics returns the server's metrics (also the chat observer).
func (s *Server) Metrics() *Metrics { return s.metrics }

// SetEvents sets who hears REST writes; call it before serving.
func (s *Server) SetEvents(e Events) { s.cfg.Events = e }

// AddReadiness adds a named check to /readyz (database reachable, consumer running, ...).
func (s *Server) AddReadiness(name string, check ReadinessCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.checks[name]; !ok {
		s.names = append(s.names, name)
	}
	s.checks[name] = check
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := append([]string(nil), s.names...)
	checks := make([]ReadinessCheck, len(names))
	for i, n := range names {
		checks[i] = s.checks[n]
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := http.StatusOK
	out := map[string]string{}
	for i, n := range names {
		if err := checks[i](ctx); err != nil {
			// The error names hosts and users: it goes to the log, not to whoever asks.
			status = http.StatusServiceUnavailable
			out[n] = "failing"
			s.cfg.Logger.Warn("not ready", "check", n, "err", err)
		} else {
			out[n] = "ok"
		}
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": out})
}

// statusRecorder captures the status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) wrap(rt Route) http.Handler {
	pattern := rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			took := time.Since(start)
			s.metrics.requests.WithLabelValues(pattern, r.Method, strconv.Itoa(rec.status)).Observe(took.Seconds())
			s.cfg.Logger.DebugContext(r.Context(), "request", "method", r.Method, "route", pattern, "status", rec.status, "duration_ms", float64(took.Microseconds())/1000)
		}()
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
		// URL.Query drops malformed pairs (such as ones with ';') silently; refuse them.
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			s.writeError(rec, r, badRequest("invalid_argument", "malformed query string: "+err.Error()))
			return
		}
		me := ""
		if rt.Auth {
			var err error
			if me, err = s.authenticate(r); err != nil {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
				s.writeError(rec, r, err)
				return
			}
		}
		status, body, err := rt.handle(r, me)
		var ce *cookieError
		if errors.As(err, &ce) {
			for _, c := range ce.cookies {
				http.SetCookie(rec, c)
			}
		}
		if err != nil {
			s.writeError(rec, r, err)
			return
		}
		if wc, ok := body.(withCookies); ok {
			for _, c := range wc.cookies {
				http.SetCookie(rec, c)
			}
			body = wc.body
		}
		if body == nil {
			rec.WriteHeader(status)
			return
		}
		writeJSON(rec, status, body)
	})
}

func (s *Server) authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return "", &apiError{http.StatusUnauthorized, "unauthorized", "missing bearer token"}
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", &apiError{http.StatusUnauthorized, "unauthorized", "Authorization must be 'Bearer <token>'"}
	}
	c, err := s.cfg.Users.Auth().VerifyAccessToken(strings.TrimSpace(token))
	if err != nil {
		if errors.Is(err, users.ErrInvalidToken) {
			// The verifier's text names JWT internals: say only what the client needs.
			return "", &apiError{http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired"}
		}
		return "", err
	}
	return c.UserID, nil
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body, ok := classify(err)
	if !ok {
		s.cfg.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads exactly one JSON object into v, refusing unknown fields, trailing data,
// oversized bodies and other content types.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("invalid_json", "request body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown_field", strings.TrimPrefix(err.Error(), "json: "))
	case errors.As(err, &typ):
		return badRequest("invalid_json", fmt.Sprintf("field %q must be %s", typ.Field, typ.Type))
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid_json", "malformed JSON: "+err.Error())
	default:
		return badRequest("invalid_json", err.Error())
	}
}

func queryInt(r *http.Request, name string, def, minV, maxV int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < minV || n > maxV {
		return 0, badRequest("invalid_argument", fmt.Sprintf("query parameter %s must be an integer in [%d, %d]", name, minV, maxV))
	}
	return n, nil
}

// clientAddr is the address login throttling counts against: the peer, or, when the peer
// is a trusted proxy (the ingress controller), the rightmost X-Forwarded-For entry that is
// not a trusted proxy itself. Entries left of that are the client's own claims.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.trusted(hop) {
			return hop
		}
	}
	return host
}

func (s *Server) trusted(addr string) bool {
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	for _, n := range s.cfg.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
