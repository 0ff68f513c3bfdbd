package rotation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/keys"
)

// Step carries out whatever is due now, plus req, as one committed change. The order
// makes a crash at any point safe: fresh private keys are stored before any state names
// them; the events announcing the change are prepared, under the write's commit id,
// before the state is written with check-and-set; the issuers' current key is replaced
// only after the commit; private keys of removed keys are deleted last.
func (k *Keyset) Step(ctx context.Context, req Request) error {
	var d Decision
	err := k.step(ctx, req, &d)
	k.opts.OnStep(req, d, err)
	if err != nil {
		k.fail(err)
		return err
	}
	k.mu.Lock()
	since := k.status.FailingSince
	k.status.LastError, k.status.FailingSince = nil, time.Time{}
	k.mu.Unlock()
	if !since.IsZero() {
		k.log.Info("keyset step succeeded again", zap.Duration("failed_for", k.opts.Now().Sub(since)))
	}
	// Crashes, failed attempts and lost races may have left fresh private keys that no
	// state names: the first step after a start sweeps them, and so does every step that
	// recovered or changed something.
	if !k.swept || !since.IsZero() || !d.Empty() {
		if err := k.cleanOrphans(ctx); err != nil {
			k.log.Warn("orphan sweep", zap.Error(err))
			return nil
		}
		k.swept = true
	}
	return nil
}

// step records what it decided in *d, so that a failure can still be told apart from a
// step that had nothing to do.
func (k *Keyset) step(ctx context.Context, req Request, d *Decision) error {
	k.mu.Lock()
	pol, prev, version := k.pol, k.state, k.version
	k.mu.Unlock()
	now := k.opts.Now()

	*d = Plan(prev, pol, now, req)
	if d.Empty() {
		return k.publishCurrent(ctx)
	}
	if prev != nil && d.Promote {
		if err := k.checkPromotable(ctx, prev, d); err != nil {
			return err
		}
	}
	fresh, err := k.createKeys(ctx, pol, d.NewKeys())
	if err != nil {
		return err
	}
	pub, err := publicOf(fresh)
	if err != nil {
		return fmt.Errorf("keyset %q: %w", k.name, err)
	}
	next, changes := Apply(prev, k.name, pol, *d, pub, now)
	commitID := newCommitID()
	next.RecordCommit(commitID)
	doc, err := next.Encode()
	if err != nil {
		k.deleteKeys(ctx, fresh)
		return err
	}
	// The announcements are on disk before the state they announce can be: a crash
	// after the write finds them at the next start, under an id the state names.
	if err := k.opts.Prepare(commitID, changes); err != nil {
		k.deleteKeys(ctx, fresh)
		return fmt.Errorf("keyset %q: prepare events: %w", k.name, err)
	}
	newVersion, err := k.store.Save(ctx, doc, version)
	if errors.Is(err, backends.ErrConflict) {
		// Another replica changed the state first: its change stands, ours is dropped.
		k.log.Info("state changed elsewhere; dropping this change and reloading",
			zap.String("location", k.store.Location()))
		k.opts.Abort(commitID)
		k.deleteKeys(ctx, fresh)
		return k.refresh(ctx)
	}
	if err != nil {
		// An unconfirmed write may still have landed, so the fresh keys stay (the orphan
		// sweep removes them later if no state names them), and so do its prepared
		// events: the next state committed or read back says, by its commit ids, whether
		// they are to be sent. Its changes are kept to be logged should the state read
		// back be this very document.
		k.mu.Lock()
		k.unconfirmed = append(k.unconfirmed,
			&unconfirmedWrite{doc: doc, state: next, changes: changes, req: req})
		if len(k.unconfirmed) > maxUnconfirmed {
			k.unconfirmed = k.unconfirmed[1:]
		}
		k.mu.Unlock()
		return fmt.Errorf("keyset %q: save state: %w", k.name, err)
	}

	k.mu.Lock()
	k.unconfirmed = nil
	k.mu.Unlock()
	k.commit(next, newVersion, changes)
	k.logChanges(changes, req.By)
	if d.Defer {
		k.log.Info("rotation requested; the next key must be published for publish_lead first",
			zap.String("kid", next.InPhase(Next).KID),
			zap.Time("promote_at", WakeAt(&next, pol)))
	}
	k.destroyRemoved(ctx, changes)
	return k.publishCurrent(ctx)
}

// maxUnconfirmed bounds how many unconfirmed writes are remembered while storage fails;
// all but the last few retries are long past any chance of having landed unseen.
const maxUnconfirmed = 16

// unconfirmedWrite is a state document whose write storage did not confirm, with the
// changes it carries. All writes remembered at once replaced the same version, so at
// most one of them can have landed.
type unconfirmedWrite struct {
	doc     []byte
	state   State
	changes []Change
	// req is the request the write carried out; once the write is found to have landed,
	// it is done and must not be carried out again.
	req Request
}

// newCommitID returns a fresh random commit id, 32 hex digits.
func newCommitID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// destroyRemoved deletes the private keys of keys that changes removed or revoked.
func (k *Keyset) destroyRemoved(ctx context.Context, changes []Change) {
	for _, c := range changes {
		if c.Type == Removed || c.Type == Revoked {
			if err := k.store.DeleteKey(ctx, c.Key.KID); err != nil {
				k.log.Warn("delete private key; the orphan sweep will retry",
					zap.String("kid", c.Key.KID), zap.Error(err))
			}
		}
	}
}

// commit makes s the served state and tells OnCommit.
func (k *Keyset) commit(s State, version uint64, changes []Change) {
	k.mu.Lock()
	k.state, k.version = &s, version
	k.status.Loaded = true
	k.status.NextChange = WakeAt(&s, k.pol)
	k.mu.Unlock()
	k.opts.OnCommit(s.Clone(), changes)
}

// refresh re-reads the stored state and adopts it when it changed: another replica's
// change (nothing to announce), or this replica's own write whose confirmation was lost,
// recognised by its bytes, whose changes are logged and carried out now. Either way the
// state's commit ids tell OnCommit which prepared events landed.
func (k *Keyset) refresh(ctx context.Context) error {
	doc, version, err := k.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("keyset %q: reload state: %w", k.name, err)
	}
	k.mu.Lock()
	same := k.state != nil && version == k.version
	var own *unconfirmedWrite
	for _, u := range k.unconfirmed {
		if bytes.Equal(doc, u.doc) {
			own = u
		}
	}
	if !same {
		// Once the state has moved, a write lost on the way can never land: it was a
		// check-and-set on the version it replaced.
		k.unconfirmed = nil
	}
	k.mu.Unlock()
	if same {
		return nil
	}
	if own != nil {
		k.log.Info("a state write that storage did not confirm had landed",
			zap.String("location", k.store.Location()))
		k.mu.Lock()
		k.pending = k.pending.without(own.req)
		k.mu.Unlock()
		k.commit(own.state, version, own.changes)
		k.logChanges(own.changes, own.req.By)
		k.destroyRemoved(ctx, own.changes)
		return k.publishCurrent(ctx)
	}
	s, err := Decode(doc, k.name)
	if err != nil {
		return fmt.Errorf("keyset %q: %s: %w", k.name, k.store.Location(), err)
	}
	k.commit(s, version, nil)
	return k.publishCurrent(ctx)
}

// publishCurrent hands the current private key to issuers unless it already has been.
func (k *Keyset) publishCurrent(ctx context.Context) error {
	k.mu.Lock()
	cur := k.state.InPhase(Current)
	k.mu.Unlock()
	if cur.KID == k.publishedKID {
		c, ok := k.store.(IssuedChecker)
		if !ok || c.IssuedIs(ctx, cur.KID) {
			return nil
		}
		k.log.Warn("the issuers' copy of the current key was missing or changed; restoring it",
			zap.String("kid", cur.KID))
	}
	data, err := k.store.GetKey(ctx, cur.KID)
	if err != nil {
		return fmt.Errorf("keyset %q: read current key %s: %w", k.name, cur.KID, err)
	}
	key, err := keys.ParsePrivateJWK(data)
	if err != nil {
		return fmt.Errorf("keyset %q: private key %s: %w", k.name, cur.KID, err)
	}
	if key.KID != cur.KID {
		return fmt.Errorf("keyset %q: private key stored as %s is %s", k.name, cur.KID, key.KID)
	}
	if err := k.store.PublishCurrent(ctx, key); err != nil {
		return fmt.Errorf("keyset %q: publish current key %s: %w", k.name, cur.KID, err)
	}
	k.publishedKID = cur.KID
	return nil
}

// checkPromotable refuses a promotion whose next key has no usable private key: the old
// current key keeps signing until the private half is back or the next key is revoked,
// rather than making current a key issuers could not be handed.
func (k *Keyset) checkPromotable(ctx context.Context, s *State, d *Decision) error {
	next := s.InPhase(Next)
	if next == nil || d.Revoke == next.KID {
		return nil
	}
	if err := k.checkPrivate(ctx, next.KID); err != nil {
		return fmt.Errorf("keyset %q: promote next key: %w (revoke it with `keyd revoke "+
			"--keyset %s %s` to replace it)", k.name, err, k.name, next.KID)
	}
	return nil
}

// checkPrivate makes sure the private key stored under kid is there, parses, and is the
// key of that kid.
func (k *Keyset) checkPrivate(ctx context.Context, kid string) error {
	data, err := k.store.GetKey(ctx, kid)
	if err != nil {
		return fmt.Errorf("private key %s: %w", kid, err)
	}
	key, err := keys.ParsePrivateJWK(data)
	if err != nil {
		return fmt.Errorf("private key %s: %w", kid, err)
	}
	if key.KID != kid {
		return fmt.Errorf("private key stored as %s is %s", kid, key.KID)
	}
	return nil
}

// createKeys generates n keys and stores their private halves.
func (k *Keyset) createKeys(ctx context.Context, pol Policy, n int) ([]*keys.Key, error) {
	var out []*keys.Key
	for range n {
		key, err := keys.Generate(pol.Algorithm, pol.RSABits)
		if err != nil {
			return nil, fmt.Errorf("keyset %q: %w", k.name, err)
		}
		data, err := key.PrivateJWK()
		if err != nil {
			return nil, fmt.Errorf("keyset %q: %w", k.name, err)
		}
		if err := k.store.PutKey(ctx, key.KID, data); err != nil {
			k.deleteKeys(ctx, out)
			return nil, fmt.Errorf("keyset %q: store private key %s: %w", k.name, key.KID, err)
		}
		out = append(out, key)
	}
	return out, nil
}

func (k *Keyset) deleteKeys(ctx context.Context, ks []*keys.Key) {
	for _, key := range ks {
		if err := k.store.DeleteKey(ctx, key.KID); err != nil {
			k.log.Warn("delete unused private key; the orphan sweep will retry",
				zap.String("kid", key.KID), zap.Error(err))
		}
	}
}

// cleanOrphans deletes private keys that no state names (left by a crash between storing
// a key and committing the state, or between a commit and a deletion).
func (k *Keyset) cleanOrphans(ctx context.Context) error {
	stored, err := k.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("keyset %q: list private keys: %w", k.name, err)
	}
	s, _ := k.State()
	cutoff := k.opts.Now().Add(-k.opts.OrphanMinAge)
	for _, sk := range stored {
		named := slices.ContainsFunc(s.Keys, func(key Key) bool { return key.KID == sk.KID })
		if named || (k.opts.OrphanMinAge > 0 && sk.CreatedAt.After(cutoff)) {
			continue
		}
		if err := k.store.DeleteKey(ctx, sk.KID); err != nil {
			return fmt.Errorf("keyset %q: delete orphan private key %s: %w", k.name, sk.KID, err)
		}
		k.log.Info("deleted orphan private key", zap.String("kid", sk.KID))
	}
	return nil
}

// logChanges writes one line per change, saying who caused it: by names the requester,
// or is empty when the change fell due on schedule.
func (k *Keyset) logChanges(changes []Change, by string) {
	if by == "" {
		by = "schedule"
	}
	for _, c := range changes {
		fields := []zap.Field{
			zap.String("event", string(c.Type)),
			zap.String("by", by),
			zap.String("kid", c.Key.KID),
			zap.String("alg", c.Key.Alg),
			zap.Time("published_at", c.Key.PublishedAt),
		}
		if !c.Key.ActivatedAt.IsZero() {
			fields = append(fields, zap.Time("activated_at", c.Key.ActivatedAt))
		}
		if !c.Key.ExpiresAt.IsZero() {
			fields = append(fields, zap.Time("retired_at", c.Key.RetiredAt),
				zap.Time("expires_at", c.Key.ExpiresAt))
		}
		if c.PreviousKID != "" {
			fields = append(fields, zap.String("previous_kid", c.PreviousKID))
		}
		k.log.Info(lifecycleMessage[c.Type], fields...)
	}
}

var lifecycleMessage = map[ChangeType]string{
	Published:     "key published",
	Activated:     "key activated",
	RetiredChange: "key retired",
	Removed:       "key removed",
	Revoked:       "key revoked",
}

func publicOf(ks []*keys.Key) ([]Key, error) {
	out := make([]Key, 0, len(ks))
	for _, key := range ks {
		pub, err := key.PublicJWK()
		if err != nil {
			return nil, err
		}
		out = append(out, Key{KID: key.KID, Alg: key.Alg, Public: pub})
	}
	return out, nil
}
