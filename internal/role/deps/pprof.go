package deps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// PprofFlagHelp is the help of every role's --pprof-listen.
const PprofFlagHelp = "serve Go's CPU, heap, goroutine and trace profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (empty: off; reach it with kubectl port-forward)"

// ErrPprofNotLoopback refuses a profile listener others could reach: profiles show
// memory contents (request bodies, tokens in flight) and cost CPU on demand.
var ErrPprofNotLoopback = errors.New("--pprof-listen must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)")

// ServePprof serves the profiles on addr until ctx ends; addr "" serves nothing. An
// address without a host (":6060") listens on 127.0.0.1; any other host must be
// loopback. It returns the address listened on once listening, so a port already taken
// fails the role's start.
func ServePprof(ctx context.Context, addr string, logger *slog.Logger) (string, error) {
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--pprof-listen %q: %w", addr, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case host == "localhost", ip != nil && ip.IsLoopback():
	default:
		return "", fmt.Errorf("%w, got %q", ErrPprofNotLoopback, addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", fmt.Errorf("pprof listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or a trace streams for the seconds asked.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && logger != nil {
			logger.Warn("pprof server stopped", "err", err)
		}
	}()
	if logger != nil {
		logger.Info("serving profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	}
	return ln.Addr().String(), nil
}
