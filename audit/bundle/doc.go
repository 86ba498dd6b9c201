// Package bundle exports the sealed ledger as an audit bundle and verifies
// bundles and ledgers, and its contract is that verification assumes, by
// default, a hostile bundle and a hostile database: it refuses to run
// without a trusted key ([ErrNoTrustedKey]) or on an unsigned manifest
// (unless told to), reads no bundle file larger than the manifest
// declares, and lists what failed in [Report].Problems.
//
//   - [Export] (export.go) writes a bundle directory or archive: the
//     manifest and its signature, the checkpoint (also as a cosigned note),
//     the public key, the entries with their inclusion proofs, and a CSV
//     for humans; the layout and manifest are in bundle.go, the archive
//     (manifest first, streamed, never extracted) in archive.go.
//   - [VerifyBundle] (verify.go, verify_parse.go, verify_inclusion.go,
//     verify_files*.go) checks a bundle offline: trusted key, manifest
//     signature and sizes, every leaf recomputed from its entry and its
//     proof against the signed root.
//   - [VerifyLedger] (verify_db.go) recomputes every leaf from the live
//     ledger and checks consistency between successive checkpoints;
//     verify_witness.go checks witnesses' cosignatures and a checkpoint a
//     witness remembers.
//
// It builds on package seal (the canonical entry, leaf hashes, keys,
// checkpoints, proofs), which never imports it.
package bundle
