package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/daemon"
	"github.com/keyd-io/keyd/rotation"
)

// verifierCaches are how long common JWT verifier libraries cache a JWKS by default,
// whatever Cache-Control says. A key that signs sooner after it is published than such a
// cache lives can meet a verifier that does not know its kid yet.
var verifierCaches = []time.Duration{5 * time.Minute, 10 * time.Minute, time.Hour}

// planRow is one key's coming lifecycle.
type planRow struct {
	kid                                    string
	state                                  string
	published, activated, retired, removed time.Time
}

func planCommand(configPath *string) *cobra.Command {
	var (
		keyset    string
		rotations int
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the coming rotations of every keyset",
		Long: "Simulate each keyset's coming timeline from its stored state (or from a first\n" +
			"start now, when there is none) without changing anything: when every key is\n" +
			"published, starts signing, retires and leaves the JWKS. Keys not created yet\n" +
			"are shown as planned-N. A warning marks where a verifier that caches the JWKS\n" +
			"for a common default (5m, 10m, 1h) could meet a kid it does not know yet.",
		Example: "  keyd plan\n  keyd plan --keyset api --rotations 5",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(*configPath)
			if err != nil {
				return err
			}
			// Without stored state (no data dir yet, storage unreachable) the plan starts
			// from a first start now, and says so.
			st, openErr := openStored(cmd.Context(), cfg)
			if openErr == nil {
				defer st.Close()
			}
			now := time.Now().UTC()
			for i := range cfg.Keysets {
				ks := &cfg.Keysets[i]
				if keyset != "" && ks.Name != keyset {
					continue
				}
				var state *rotation.State
				source := "no stored state: simulating the first start now"
				if openErr != nil && !errors.Is(openErr, fs.ErrNotExist) {
					source = fmt.Sprintf("storage not readable (%v): simulating the first "+
						"start now", openErr)
				}
				if st != nil {
					s, err := st.state(cmd.Context(), ks.Name)
					switch {
					case err == nil:
						state, source = &s, "from "+st.Keyset(ks.Name).Location()
					case !errors.Is(err, backends.ErrNotFound):
						return err
					}
				}
				printPlan(cmd.OutOrStdout(), ks, source, state, now, rotations)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyset, "keyset", "", "plan only this keyset")
	cmd.Flags().IntVar(&rotations, "rotations", 3, "how many rotations to simulate")
	return cmd
}

func printPlan(w io.Writer, ks *config.Keyset, source string, s *rotation.State,
	now time.Time, rotations int,
) {
	pol := daemon.Policy(ks)
	rows, order := planRows(s, rotation.Simulate(s, ks.Name, pol, now, rotations))

	fmt.Fprintf(w, "keyset %s (%s, schedule %q, publish_lead %s, token_ttl %s, grace %s)\n",
		ks.Name, ks.Algorithm, ks.Schedule, ks.PublishLead.D(), ks.TokenTTL.D(), ks.Grace.D())
	fmt.Fprintf(w, "  %s\n", source)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  KID\tSTATE\tPUBLISHED\tACTIVATED\tRETIRED\tREMOVED\tLEAD")
	var warnings []string
	for _, kid := range order {
		r := rows[kid]
		lead := "-"
		if !r.activated.IsZero() && !r.published.IsZero() {
			d := r.activated.Sub(r.published).Round(time.Second)
			lead = shortDuration(d)
			// The first key of a keyset signs at once: no verifier has a JWKS to be stale.
			if short := shorterCaches(d); len(short) > 0 && r.activated.After(now) {
				lead += " !"
				warnings = append(warnings, fmt.Sprintf("key %s signs %s after it is "+
					"published: verifiers caching the JWKS for %s may not know it yet",
					shortKID(kid), shortDuration(d), joinDurations(short)))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortKID(kid), r.state,
			stamp(r.published), stamp(r.activated), stamp(r.retired), stamp(r.removed), lead)
	}
	_ = tw.Flush()
	if short := shorterCaches(ks.PublishLead.D()); len(short) > 0 {
		warnings = append(warnings, fmt.Sprintf("publish_lead %s is shorter than a verifier "+
			"JWKS cache of %s: after `keyd rotate` or SIGUSR1 a key may sign before such "+
			"verifiers have fetched it; raise publish_lead to at least %s",
			shortDuration(ks.PublishLead.D()), joinDurations(short),
			shortDuration(short[len(short)-1])))
	}
	for _, warn := range warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	fmt.Fprintln(w)
}

// planRows merges the stored keys and the forecast into one row per key, in the order
// they appear.
func planRows(s *rotation.State, forecast []rotation.Forecast) (map[string]*planRow, []string) {
	rows := map[string]*planRow{}
	var order []string
	row := func(kid string) *planRow {
		if r, ok := rows[kid]; ok {
			return r
		}
		r := &planRow{kid: kid, state: "planned"}
		rows[kid] = r
		order = append(order, kid)
		return r
	}
	if s != nil {
		for _, k := range s.Published() {
			r := row(k.KID)
			r.state = string(k.Phase)
			r.published, r.activated, r.retired = k.PublishedAt, k.ActivatedAt, k.RetiredAt
			r.removed = k.ExpiresAt
		}
	}
	for _, f := range forecast {
		r := row(f.Change.Key.KID)
		switch f.Change.Type {
		case rotation.Published:
			r.published = f.At
		case rotation.Activated:
			r.activated = f.At
		case rotation.RetiredChange:
			r.retired, r.removed = f.At, f.Change.Key.ExpiresAt
		case rotation.Removed:
			r.removed = f.At
		}
	}
	return rows, order
}

// shorterCaches returns the verifier cache times longer than lead.
func shorterCaches(lead time.Duration) []time.Duration {
	var out []time.Duration
	for _, c := range verifierCaches {
		if lead < c {
			out = append(out, c)
		}
	}
	return out
}

func joinDurations(ds []time.Duration) string {
	out := ""
	for i, d := range ds {
		if i > 0 {
			out += ", "
		}
		out += shortDuration(d)
	}
	return out
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// shortKID keeps tables narrow; kids are 43 characters.
func shortKID(kid string) string {
	if len(kid) > 16 {
		return kid[:12] + "…"
	}
	return kid
}
