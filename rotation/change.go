package rotation

// ChangeType names a lifecycle change; the names are the event types issuers receive.
type ChangeType string

// The lifecycle changes, as announced to issuers.
const (
	Published     ChangeType = "key.published"
	Activated     ChangeType = "key.activated"
	RetiredChange ChangeType = "key.retired"
	Removed       ChangeType = "key.removed"
	Revoked       ChangeType = "key.revoked"
)

// Change is one committed lifecycle change of one key.
type Change struct {
	Type ChangeType
	Key  Key
	// PreviousKID is the key that signed before, on activation.
	PreviousKID string
}
