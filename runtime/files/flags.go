package files

import (
	"context"
	"flag"
	"time"
)

// RegisterFlags binds the service's limits to flags (each defaulting from
// PARLEY_<NAME>, see internal/cli). The operator sets --files-max-upload-bytes from
// ChatCluster spec.files.maxUploadBytes.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxUploadBytes, "files-max-upload-bytes", DefaultMaxUploadBytes, "largest accepted upload in bytes")
	fs.Int64Var(&c.QuotaBytes, "files-quota-bytes", 0, "bytes each user may keep stored (0: no quota)")
	fs.Int64Var(&c.MaxImagePixels, "files-max-image-pixels", DefaultMaxImagePixels, "images claiming more pixels get no thumbnail")
	fs.DurationVar(&c.OrphanGrace, "files-orphan-grace", DefaultOrphanGrace, "how long an upload may wait for a message before it is deleted")
}

// RunOrphanCleanup calls CleanOrphans every interval until ctx is done. Failures are
// logged and retried at the next tick: cleanup is best effort and idempotent.
func (s *Service) RunOrphanCleanup(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := s.CleanOrphans(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.WarnContext(ctx, "orphan cleanup failed", "removed", n, "err", err)
		case n > 0:
			s.cfg.Logger.InfoContext(ctx, "orphan uploads removed", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
