package main

import (
	"net/http"
	"testing"

	"github.com/webhookd/webhookd/audit/seal"
)

// The ledger endpoints' error answers are like every other: JSON with an
// error_id that is on the matching log line.
func TestLedgerEndpointErrorsCarryAnErrorID(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	h.requireRejected(h.get(seal.CheckpointPath), http.StatusNotFound, "not_found", "no_checkpoint")
	h.requireRejected(h.get(seal.ConsistencyProofPath+"?from=x&to=1"), http.StatusBadRequest, "invalid", "bad_query")
	h.requireRejected(h.get(seal.InclusionProofPath+"?index=5&tree_size=2"), http.StatusBadRequest, "invalid", "bad_query")
	h.requireRejected(h.postRaw(seal.CosignaturesPath, []byte("not a note")), http.StatusForbidden, "forbidden", "no_witnesses")
}
