package projections_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/fixtures"
	"github.com/webhookd/webhookd/projections"
)

// TestReadModelsDecodeOnlyTheirEventTypes holds each read model's
// EventTypes to what its Decode takes, for every Clerk example event: the
// runner reads entries of other types without their payload and passes
// over them, so a type Decode takes but EventTypes leaves out would never
// be applied.
func TestReadModelsDecodeOnlyTheirEventTypes(t *testing.T) {
	t.Parallel()
	for _, m := range projections.All() {
		t.Run(m.Name(), func(t *testing.T) {
			t.Parallel()
			types := m.EventTypes()
			require.NotEmpty(t, types)
			for _, typ := range fixtures.ClerkEventTypes() {
				e := domain.LedgerEntry{Offset: 1, SvixID: "msg_1", Source: domain.SourceClerk, EventType: typ, Payload: fixtures.ClerkEvent(typ)}
				_, ok, err := m.Prepare(e)
				if slices.Contains(types, typ) {
					require.NoError(t, err, typ)
					require.True(t, ok, "%s lists %s but does not take its example", m.Name(), typ)
					continue
				}
				require.False(t, ok, "%s takes %s, which it does not list", m.Name(), typ)
			}
		})
	}
}
