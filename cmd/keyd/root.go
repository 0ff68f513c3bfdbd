package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/daemon"
)

// daemonGCPercent is the garbage collector's target for `keyd run` unless GOGC is set.
const daemonGCPercent = 400

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module
// version is used.
var version = ""

func newRoot() *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:   "keyd",
		Short: "keyd creates, rotates and publishes JWT signing keys",
		Long: "keyd owns the signing keys of JWT issuers: it creates keys on a schedule, keeps\n" +
			"private keys on disk or in Vault, serves the public keys at\n" +
			"/.well-known/jwks.json and tells issuers which kid to sign with.\n\n" +
			"Without a subcommand keyd runs the daemon.",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemon(configPath)
		},
	}
	root.PersistentFlags().StringVar(&configPath, "config", "",
		"configuration file (default $KEYD_CONFIG, else the built-in defaults)")
	root.AddCommand(
		&cobra.Command{
			Use:   "run",
			Short: "Run the daemon (the default)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return runDaemon(configPath)
			},
		},
		&cobra.Command{
			Use:   "check-config",
			Short: "Validate the configuration and exit",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig(configPath)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d keysets)\n", cfg.Source(),
					len(cfg.Keysets))
				return nil
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print keyd's version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, args []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "keyd", buildVersion())
			},
		},
	)
	root.AddCommand(adminCommands(&configPath)...)
	root.AddCommand(offlineCommands(&configPath)...)
	return root
}

// loadConfig reads --config, else $KEYD_CONFIG, else the built-in defaults.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = os.Getenv("KEYD_CONFIG")
	}
	return config.Load(path)
}

func runDaemon(configPath string) error {
	// Signals first: a SIGTERM or SIGUSR1 that arrives while keys load is kept, not lost.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	// The daemon's live heap is a few MiB; collecting it four times less often costs about
	// 12 MiB and takes about a seventh off the CPU time of each JWKS request (see
	// docs/performance.md). An operator's GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}

	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	log, level, err := daemon.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	daemon.Version = buildVersion()
	ctx := context.Background()
	d, err := daemon.New(ctx, cfg, log, level)
	if err != nil {
		return err
	}
	return d.Run(ctx, signals)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
