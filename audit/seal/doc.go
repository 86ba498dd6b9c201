// Package seal makes the ledger tamper-evident, and its contract is: an
// entry is given a ledger index, and so a leaf in the RFC 6962 tree, only
// after its origin has been checked, and every checkpoint signed is
// consistent with every checkpoint signed or seen before it.
//
// It holds what both the sealer and anyone checking its work must agree
// on, so that the bundle package (export and verification) depends on it
// and never the other way round:
//
//   - The canonical entry and its leaf hash ([Entry], [CanonicalEntry],
//     [ComputeLeafHash]; seal_entry.go): the bytes a leaf commits to.
//   - Keys and checkpoints ([Checkpoint], [SignCheckpoint], [KeyID],
//     [ParseSigningKey], [ParseTrustFile]; seal_key.go) and checkpoints as
//     C2SP signed notes ([LogKey], [LogVerifier]; checkpoint_note.go).
//   - Origin checks of ledger rows ([OriginVerifier], [SignInternalEntry];
//     origin.go): a Clerk row by its Svix signature, webhookd's own rows
//     by an Ed25519 signature of its signing key.
//   - The sealer ([Sealer], [SealerConfig], [SealOnce]; seal.go): one
//     leader across replicas indexes committed rows in safe order, signs
//     checkpoints, and refuses (ErrIntegrity) rather than start over on
//     emptied or cut seal tables.
//   - Inclusion and consistency proofs served over HTTP ([Proof],
//     [LedgerHandlers]; proof.go, ledger_http.go), witness cosignatures
//     ([Cosignature], [CheckCosignatures]; cosignature.go) and the witness
//     that cosigns only a checkpoint consistent with the last one it
//     cosigned ([Witness]; witness.go).
//
// The package knows no SQL: the ledger is reached through the interfaces
// it declares ([SealLedger], [LedgerProofs]), which *eventstore.Store
// implements. It logs through the redact package like every other.
package seal
