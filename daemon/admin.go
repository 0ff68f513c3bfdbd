package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/admin"
	"github.com/keyd-io/keyd/rotation"
)

// Version is reported by `keyd status`; the command sets it from its build information.
var Version = "(devel)"

// listenAdmin creates the admin socket at server.admin_socket.
func (d *Daemon) listenAdmin() error {
	srv, err := admin.Listen(d.cfg.Server.AdminSocket, adminHandler{d}, d.log, admin.Options{})
	if err != nil {
		return fmt.Errorf("server.admin_socket: %w", err)
	}
	d.admin = srv
	return nil
}

// serveAdmin serves the admin socket until it is closed.
func (d *Daemon) serveAdmin() {
	if d.admin == nil {
		return
	}
	go func() {
		if err := d.admin.Serve(); err != nil {
			d.log.Error("admin socket stopped", zap.Error(err))
		}
	}()
}

func (d *Daemon) closeAdmin() {
	if d.admin != nil {
		_ = d.admin.Close()
		d.admin = nil
	}
}

// adminHandler carries out admin socket commands and writes one audit line for each.
type adminHandler struct{ d *Daemon }

func (h adminHandler) Handle(ctx context.Context, peer admin.Peer, req admin.Request,
) admin.Response {
	var resp admin.Response
	switch req.Command {
	case admin.CommandStatus:
		resp.Status = h.d.status()
	case admin.CommandRotate:
		resp = h.d.adminRotate(ctx, peer, req)
	case admin.CommandRevoke:
		resp = h.d.adminRevoke(ctx, peer, req)
	default:
		resp.Error = fmt.Sprintf("unknown command %q", req.Command)
	}
	h.audit(peer, req, resp)
	return resp
}

func (h adminHandler) audit(peer admin.Peer, req admin.Request, resp admin.Response) {
	fields := []zap.Field{
		zap.String("audit", "admin"),
		zap.Uint32("peer_uid", peer.UID),
		zap.Int32("peer_pid", peer.PID),
		zap.String("command", req.Command),
		zap.String("keyset", req.Keyset),
	}
	if req.KID != "" {
		fields = append(fields, zap.String("kid", req.KID))
	}
	if req.Command == admin.CommandRotate {
		fields = append(fields, zap.Bool("immediate", req.Immediate))
	}
	if len(resp.Results) > 0 {
		fields = append(fields, zap.Any("results", resp.Results))
	}
	if resp.Error != "" {
		h.d.log.Warn("admin command refused", append(fields, zap.String("error", resp.Error))...)
		return
	}
	h.d.log.Info("admin command", fields...)
}

// adminRotate rotates one keyset, or every keyset when none is named, and waits for it.
func (d *Daemon) adminRotate(ctx context.Context, peer admin.Peer, req admin.Request,
) admin.Response {
	runners, err := d.pickKeysets(req.Keyset, false)
	if err != nil {
		return admin.Response{Error: err.Error()}
	}
	var resp admin.Response
	for _, r := range runners {
		before, _ := r.keyset.State()
		err := r.keyset.Do(ctx, rotation.Request{Rotate: true, Immediate: req.Immediate,
			By: peerName(peer)})
		resp.Results = append(resp.Results, d.resultOf(r, before, err))
	}
	return resp
}

// adminRevoke revokes one key: it leaves the JWKS at once and its private key is
// destroyed; a revoked current or next key is replaced by the engine.
func (d *Daemon) adminRevoke(ctx context.Context, peer admin.Peer, req admin.Request,
) admin.Response {
	if req.Keyset == "" || req.KID == "" {
		return admin.Response{Error: "revoke needs a keyset and a kid"}
	}
	runners, err := d.pickKeysets(req.Keyset, true)
	if err != nil {
		return admin.Response{Error: err.Error()}
	}
	r := runners[0]
	err = r.keyset.Do(ctx, rotation.Request{Revoke: req.KID, By: peerName(peer)})
	if errors.Is(err, rotation.ErrUnknownKID) {
		return admin.Response{Error: fmt.Sprintf("keyset %q holds no key %s (see keyd status)",
			req.Keyset, req.KID)}
	}
	res := d.resultOf(r, rotation.State{}, err)
	if err == nil {
		res.Outcome = admin.OutcomeRevoked
	}
	return admin.Response{Results: []admin.Result{res}}
}

// peerName names an admin socket caller in lifecycle log lines.
func peerName(peer admin.Peer) string {
	return fmt.Sprintf("admin uid %d", peer.UID)
}

// pickKeysets returns the runner of keyset name, or every runner when name is empty and
// required is false.
func (d *Daemon) pickKeysets(name string, required bool) ([]*runner, error) {
	all := d.runners()
	if name == "" && !required {
		return all, nil
	}
	var names []string
	for _, r := range all {
		if r.keyset.Name() == name {
			return []*runner{r}, nil
		}
		names = append(names, r.keyset.Name())
	}
	if name == "" {
		return nil, fmt.Errorf("name a keyset (one of %s)", strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("no keyset %q (keysets: %s)", name, strings.Join(names, ", "))
}

// resultOf describes keyset r after a request that ended with err.
func (d *Daemon) resultOf(r *runner, before rotation.State, err error) admin.Result {
	res := admin.Result{Keyset: r.keyset.Name()}
	after, _ := r.keyset.State()
	if cur := after.InPhase(rotation.Current); cur != nil {
		res.CurrentKID = cur.KID
	}
	if next := after.InPhase(rotation.Next); next != nil {
		res.NextKID = next.KID
	}
	prev := before.InPhase(rotation.Current)
	switch {
	case err != nil:
		res.Outcome, res.Error = admin.OutcomeFailed, err.Error()
	case prev != nil && prev.KID != res.CurrentKID:
		res.Outcome = admin.OutcomeRotated
	default:
		res.Outcome = admin.OutcomeDeferred
		if pol, ok := d.policy(r.keyset.Name()); ok {
			res.PromoteAt = rotation.NextPromotion(&after, pol)
		}
	}
	return res
}

// status describes every keyset for `keyd status`.
func (d *Daemon) status() *admin.Status {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	out := &admin.Status{Version: Version, Config: cfg.Source(), Started: d.started.UTC(),
		Pending: d.notifier.Pending()}
	now := time.Now()
	for _, r := range d.runners() {
		ks := cfg.Keyset(r.keyset.Name())
		if ks == nil {
			continue
		}
		st := admin.KeysetStatus{
			Name:        ks.Name,
			Algorithm:   ks.Algorithm,
			Schedule:    ks.Schedule,
			PublishLead: ks.PublishLead.D().String(),
			Grace:       ks.Grace.D().String(),
			Problem:     strings.Join(problemsOf(r.keyset.Status(), now), "; "),
		}
		if s, ok := r.keyset.State(); ok {
			st.NextRotation = rotation.NextPromotion(&s, policyOf(ks)).UTC()
			st.LastRotation = s.RotatedAt.UTC()
			st.RotationRequestedAt = s.RequestedAt.UTC()
			for _, k := range s.Published() {
				st.Keys = append(st.Keys, admin.KeyStatus{
					KID: k.KID, Alg: k.Alg, State: string(k.Phase),
					PublishedAt: k.PublishedAt.UTC(), ActivatedAt: k.ActivatedAt.UTC(),
					RetiredAt: k.RetiredAt.UTC(), ExpiresAt: k.ExpiresAt.UTC(),
				})
			}
		}
		out.Keysets = append(out.Keysets, st)
	}
	return out
}

// policy returns the running rotation policy of keyset name.
func (d *Daemon) policy(name string) (rotation.Policy, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ks := d.cfg.Keyset(name)
	if ks == nil {
		return rotation.Policy{}, false
	}
	return policyOf(ks), true
}
