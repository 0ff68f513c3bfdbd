// Package daemon assembles a running keyd from a configuration: storage, one rotation
// runner per keyset, the HTTP server, and the reaction to signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/admin"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/jwks"
	"github.com/keyd-io/keyd/notify"
	"github.com/keyd-io/keyd/rotation"
)

// shutdownTimeout bounds how long open HTTP requests may take to finish on shutdown.
const shutdownTimeout = 10 * time.Second

// Daemon is a running keyd.
type Daemon struct {
	log   *zap.Logger
	level zap.AtomicLevel

	mu       sync.Mutex
	cfg      *config.Config
	backend  storage
	jwks     *jwks.Handler
	notifier *notify.Notifier
	keysets  map[string]*runner
	cert     *certificate
	server   *http.Server
	listener net.Listener
	wg       sync.WaitGroup
	started  time.Time

	// Running as a system service: systemd notifications, admin socket, metrics.
	svc     *service
	stopSvc func()
	admin   *admin.Server
	metrics *metrics
}

// runner is one keyset's rotation loop and the means to stop it.
type runner struct {
	keyset *rotation.Keyset
	cancel context.CancelFunc
	done   chan struct{}
}

// New opens storage, loads or creates every keyset's keys (running any change that fell
// due while keyd was down) and binds the listener. Nothing is served until Run.
func New(ctx context.Context, cfg *config.Config, log *zap.Logger, level zap.AtomicLevel,
) (*Daemon, error) {
	d := &Daemon{
		log:     log,
		level:   level,
		cfg:     cfg,
		jwks:    jwks.NewHandler(cfg.DefaultKeyset().Name),
		keysets: map[string]*runner{},
		started: time.Now(),
		svc:     newService(log),
		stopSvc: func() {},
	}
	d.metrics = newMetrics(d)
	if err := d.openKeysets(ctx, cfg); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.listen(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.listenAdmin(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Run serves until ctx ends, reacting to signals: SIGUSR1 rotates every keyset, SIGHUP
// reloads the configuration, SIGTERM and SIGINT stop. It returns nil on a clean stop.
func (d *Daemon) Run(ctx context.Context, signals <-chan os.Signal) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.serve() }()
	d.serveAdmin()
	d.notifier.Start()
	for _, r := range d.runners() {
		d.runKeyset(r)
	}
	d.log.Info("keyd ready", zap.String("listen", d.listener.Addr().String()),
		zap.String("config", d.cfg.Source()), zap.Int("keysets", len(d.cfg.Keysets)),
		zap.Duration("startup", time.Since(d.started)))
	d.svc.ready(d.summary())
	d.startService()

	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case err := <-serveErr:
			d.shutdown()
			return fmt.Errorf("http server: %w", err)
		case sig := <-signals:
			switch sig {
			case syscall.SIGUSR1:
				d.log.Info("SIGUSR1: rotating every keyset")
				d.Rotate(rotation.Request{Rotate: true, By: "SIGUSR1"})
			case syscall.SIGHUP:
				d.svc.reloading()
				d.Reload()
				d.svc.ready(d.summary())
			case syscall.SIGTERM, syscall.SIGINT:
				d.log.Info("stopping", zap.String("signal", sig.String()))
				return d.shutdown()
			}
		}
	}
}

// Rotate passes req to every keyset.
func (d *Daemon) Rotate(req rotation.Request) {
	for _, r := range d.runners() {
		r.keyset.Request(req)
	}
}

// Addr returns the address the HTTP server listens on.
func (d *Daemon) Addr() net.Addr { return d.listener.Addr() }

// Close releases storage; Run's shutdown calls it.
func (d *Daemon) Close() {
	d.closeAdmin()
	if d.listener != nil {
		d.listener.Close()
	}
	d.mu.Lock()
	backend, notifier := d.backend, d.notifier
	d.mu.Unlock()
	if notifier != nil {
		notifier.Close()
	}
	if backend != nil {
		backend.Close()
	}
}

func (d *Daemon) startKeyset(ctx context.Context, ks *config.Keyset) error {
	name := ks.Name
	opts := rotation.Options{
		Log: d.log,
		Prepare: func(commit string, changes []rotation.Change) error {
			return d.prepare(name, commit, changes)
		},
		Abort: func(commit string) { d.abort(name, commit) },
		OnCommit: func(s rotation.State, _ []rotation.Change) {
			d.onCommit(name, s)
		},
		OnStep: d.metrics.observeStep(name),
	}
	d.backend.Tune(&opts)
	store := d.metrics.store(name, d.backend.Keyset(name))
	keyset := rotation.NewKeyset(name, policyOf(ks), store, opts)
	if err := keyset.Start(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.keysets[name] = &runner{keyset: keyset}
	d.mu.Unlock()
	return nil
}

func (d *Daemon) runKeyset(r *runner) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(r.done)
		r.keyset.Run(ctx)
	}()
}

func (d *Daemon) stopKeyset(r *runner) {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

func (d *Daemon) runners() []*runner {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*runner, 0, len(d.keysets))
	for _, ks := range d.cfg.Keysets {
		if r, ok := d.keysets[ks.Name]; ok {
			out = append(out, r)
		}
	}
	return out
}

// maxAge is the JWKS Cache-Control max-age of keyset name: jwks_max_age, never above the
// keyset's publish_lead, so a verifier's cached copy always knows the next key in time.
func (d *Daemon) maxAge(name string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	maxAge := d.cfg.Server.JWKSMaxAge.D()
	if ks := d.cfg.Keyset(name); ks != nil {
		maxAge = min(maxAge, ks.PublishLead.D())
	}
	return maxAge
}

func (d *Daemon) shutdown() error {
	d.svc.stopping()
	d.stopSvc()
	d.closeAdmin()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := d.server.Shutdown(ctx)
	for _, r := range d.runners() {
		r.cancel()
	}
	d.wg.Wait()
	d.notifier.Stop()
	d.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop http server: %w", err)
	}
	d.log.Info("stopped")
	return nil
}

// Reload re-reads the configuration file. A bad file changes nothing: keyd keeps running
// on the old configuration and logs why. Settings that need a restart are reported.
func (d *Daemon) Reload() {
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	d.log.Info("SIGHUP: reloading configuration", zap.String("config", old.Source()))
	cfg, err := config.Load(old.Path)
	if err != nil {
		d.log.Error("reload refused; keeping the running configuration", zap.Error(err))
		return
	}
	for _, field := range restartOnly(old, cfg) {
		d.log.Warn("setting changed; it takes effect at the next restart",
			zap.String("setting", field))
	}
	cfg.Storage, cfg.Server.Listen, cfg.Server.AdminSocket, cfg.Notify =
		old.Storage, old.Server.Listen, old.Server.AdminSocket, old.Notify
	d.level.SetLevel(mustLevel(cfg.Log.Level).Level())
	if d.cert != nil && cfg.Server.TLSCertFile != "" {
		d.cert.certFile, d.cert.keyFile = cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile
		if err := d.cert.reload(); err != nil {
			d.log.Error("TLS certificate reload failed; serving the previous one", zap.Error(err))
		}
	}

	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.applyKeysets(old, cfg)
	d.log.Info("configuration reloaded", zap.Int("keysets", len(cfg.Keysets)))
}

func (d *Daemon) applyKeysets(old, cfg *config.Config) {
	var names []string
	for i := range cfg.Keysets {
		ks := &cfg.Keysets[i]
		names = append(names, ks.Name)
		d.mu.Lock()
		r, ok := d.keysets[ks.Name]
		d.mu.Unlock()
		if ok {
			r.keyset.SetPolicy(policyOf(ks))
			if s, loaded := r.keyset.State(); loaded {
				d.jwks.Publish(ks.Name, s, d.maxAge(ks.Name))
			}
			continue
		}
		if err := d.startKeyset(context.Background(), ks); err != nil {
			d.log.Error("new keyset not started", zap.String("keyset", ks.Name), zap.Error(err))
			continue
		}
		d.mu.Lock()
		r = d.keysets[ks.Name]
		d.mu.Unlock()
		d.runKeyset(r)
		d.log.Info("keyset added", zap.String("keyset", ks.Name))
	}
	for _, ks := range old.Keysets {
		if cfg.Keyset(ks.Name) != nil {
			continue
		}
		d.mu.Lock()
		r := d.keysets[ks.Name]
		delete(d.keysets, ks.Name)
		d.mu.Unlock()
		if r != nil {
			d.stopKeyset(r)
		}
		d.log.Warn("keyset removed from configuration: no longer served or rotated; its keys "+
			"stay in storage", zap.String("keyset", ks.Name))
	}
	d.jwks.Retain(names, cfg.DefaultKeyset().Name)
}

// restartOnly lists the settings that differ between old and cfg but are only read at start.
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	if !reflect.DeepEqual(old.Storage, cfg.Storage) {
		out = append(out, "storage")
	}
	if old.Server.Listen != cfg.Server.Listen {
		out = append(out, "server.listen")
	}
	if old.Server.AdminSocket != cfg.Server.AdminSocket {
		out = append(out, "server.admin_socket")
	}
	if (old.Server.TLSCertFile == "") != (cfg.Server.TLSCertFile == "") {
		out = append(out, "server.tls_cert_file")
	}
	if old.Log.Format != cfg.Log.Format {
		out = append(out, "log.format")
	}
	if !reflect.DeepEqual(old.Notify, cfg.Notify) {
		out = append(out, "notify")
	}
	return out
}

func policyOf(ks *config.Keyset) rotation.Policy {
	return rotation.Policy{
		Algorithm:   ks.Algorithm,
		RSABits:     ks.RSABits,
		Schedule:    ks.Cron,
		PublishLead: ks.PublishLead.D(),
		Grace:       ks.Grace.D(),
	}
}

func mustLevel(s string) zap.AtomicLevel {
	level, err := zap.ParseAtomicLevel(s)
	if err != nil {
		return zap.NewAtomicLevel()
	}
	return level
}
