package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/keyd-io/keyd/admin"
)

// adminCommands are the subcommands that talk to a running keyd over its admin socket.
func adminCommands(configPath *string) []*cobra.Command {
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show every keyset and key of the running daemon",
		Long: "Ask the running keyd, over its admin socket (server.admin_socket), for every\n" +
			"keyset and key: kid, algorithm, state, when it was published, activated and\n" +
			"retired, when it leaves the JWKS, and when the next rotation is due.",
		Example: "  keyd status --config /etc/keyd/config.toml\n  keyd status --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := callAdmin(cmd.Context(), *configPath,
				admin.Request{Command: admin.CommandStatus})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.Status)
			}
			return printStatus(cmd.OutOrStdout(), resp.Status)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")

	var (
		rotateKeyset string
		immediate    bool
	)
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate one keyset, or all, now",
		Long: "Promote the next key to current, retire the current key and publish a new\n" +
			"next key. A next key that has been published for less than publish_lead is\n" +
			"not promoted yet: the rotation then happens as soon as it is old enough,\n" +
			"unless --immediate is given (verifiers that cached the JWKS before the next\n" +
			"key appeared may then meet an unknown kid).",
		Example: "  keyd rotate\n  keyd rotate --keyset api\n  keyd rotate --keyset api --immediate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := callAdmin(cmd.Context(), *configPath, admin.Request{
				Command: admin.CommandRotate, Keyset: rotateKeyset, Immediate: immediate,
			})
			if err != nil {
				return err
			}
			return printResults(cmd.OutOrStdout(), resp.Results)
		},
	}
	rotate.Flags().StringVar(&rotateKeyset, "keyset", "", "rotate only this keyset")
	rotate.Flags().BoolVar(&immediate, "immediate", false,
		"do not wait for the next key to have been published for publish_lead")

	var (
		revokeKeyset string
		yes          bool
	)
	revoke := &cobra.Command{
		Use:   "revoke --keyset NAME KID",
		Short: "Revoke a key at once (compromise)",
		Long: "Remove the key from the JWKS at once and destroy its private key. Tokens it\n" +
			"signed stop verifying as soon as verifiers refresh the JWKS. If it was the\n" +
			"current key, the next key takes over at once and a new next key is created.\n" +
			"On a terminal keyd asks for confirmation unless --yes is given.",
		Example: "  keyd revoke --keyset api 3k9dS0eGq1x6mVbq5pN6b4Qm0wAcYlq8zF1u2sXyTHo\n" +
			"  keyd revoke --keyset api --yes KID",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if revokeKeyset == "" {
				return errors.New("--keyset is required")
			}
			kid := args[0]
			if !yes && isTerminal(os.Stdin) {
				ok, err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), fmt.Sprintf(
					"Revoke key %s of keyset %q? It leaves the JWKS now and tokens it "+
						"signed stop verifying. [y/N] ", kid, revokeKeyset))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("revocation cancelled")
				}
			}
			resp, err := callAdmin(cmd.Context(), *configPath, admin.Request{
				Command: admin.CommandRevoke, Keyset: revokeKeyset, KID: kid,
			})
			if err != nil {
				return err
			}
			return printResults(cmd.OutOrStdout(), resp.Results)
		},
	}
	revoke.Flags().StringVar(&revokeKeyset, "keyset", "", "the keyset holding the key (required)")
	revoke.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return []*cobra.Command{status, rotate, revoke}
}

// callAdmin sends req to the daemon that the configuration describes.
func callAdmin(ctx context.Context, configPath string, req admin.Request,
) (*admin.Response, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	client := &admin.Client{Socket: cfg.Server.AdminSocket}
	resp, err := client.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Command, err)
	}
	return resp, nil
}

func printStatus(w io.Writer, st *admin.Status) error {
	fmt.Fprintf(w, "keyd %s, %s, up since %s\n", st.Version, st.Config, stamp(st.Started))
	if len(st.Pending) == 0 {
		fmt.Fprintln(w, "pending deliveries: none")
	}
	for _, dest := range slices.Sorted(maps.Keys(st.Pending)) {
		fmt.Fprintf(w, "pending deliveries: %d for %s\n", st.Pending[dest], dest)
	}
	for _, ks := range st.Keysets {
		fmt.Fprintf(w, "\nkeyset %s: %s, schedule %q, publish_lead %s, grace %s\n",
			ks.Name, ks.Algorithm, ks.Schedule, ks.PublishLead, ks.Grace)
		health := "ok"
		if ks.Problem != "" {
			health = ks.Problem
		}
		fmt.Fprintf(w, "  health:         %s\n", health)
		fmt.Fprintf(w, "  last rotation:  %s\n", stamp(ks.LastRotation))
		fmt.Fprintf(w, "  next rotation:  %s\n", stamp(ks.NextRotation))
		if !ks.RotationRequestedAt.IsZero() {
			fmt.Fprintf(w, "  requested at:   %s (waits for publish_lead)\n",
				stamp(ks.RotationRequestedAt))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KID\tALG\tSTATE\tPUBLISHED\tACTIVATED\tRETIRED\tEXPIRES")
		for _, k := range ks.Keys {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State,
				stamp(k.PublishedAt), stamp(k.ActivatedAt), stamp(k.RetiredAt),
				stamp(k.ExpiresAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func printResults(w io.Writer, results []admin.Result) error {
	var failed []string
	for _, r := range results {
		switch r.Outcome {
		case admin.OutcomeFailed:
			fmt.Fprintf(w, "%s: failed: %s\n", r.Keyset, r.Error)
			failed = append(failed, r.Keyset)
		case admin.OutcomeDeferred:
			fmt.Fprintf(w, "%s: deferred until %s (the next key %s must be published for "+
				"publish_lead first; --immediate skips the wait)\n", r.Keyset,
				stamp(r.PromoteAt), r.NextKID)
		default:
			fmt.Fprintf(w, "%s: %s; current %s, next %s\n", r.Keyset, r.Outcome,
				r.CurrentKID, r.NextKID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed for %s", strings.Join(failed, ", "))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stamp formats t for tables; "-" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// confirm asks question on out and reads a yes or no from in.
func confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
