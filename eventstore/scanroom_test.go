package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// A poll loop passes its previous batch back to ScanAfterForTypes: the
// next batch is read into the same array, holds exactly the entries after
// the position (none of the previous batch's, even when it is shorter),
// with the payloads of the wanted types only, and the caller's copies of
// the previous entries keep their own bytes.
func TestScanAfterForTypesReadsIntoThePreviousBatch(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	appendN(t, s, "msg_room", 7)
	other := entry("msg_room_other")
	other.EventType = "organization.created"
	_, err := s.Append(ctx, other)
	require.NoError(t, err)

	first, err := eventstore.ScanAfterForTypes(ctx, db.Pool, nil, eventstore.Position{}, 5, []string{"user.created"})
	require.NoError(t, err)
	require.Len(t, first, 5)
	kept := first[4].LedgerEntry
	keptPayload := string(kept.Payload)

	second, err := eventstore.ScanAfterForTypes(ctx, db.Pool, first, first[4].Position, 5, []string{"user.created"})
	require.NoError(t, err)
	require.Len(t, second, 3, "the entries after the position, not the previous batch's")
	require.Same(t, &first[0], &second[0], "read into the previous batch's array")
	for i, e := range second[:2] {
		require.Equal(t, fmt.Sprintf("msg_room_%d", 5+i), e.SvixID)
		require.Equal(t, string(entry("x").Payload), string(e.Payload))
	}
	require.Equal(t, "msg_room_other", second[2].SvixID)
	require.Nil(t, second[2].Payload, "another type comes without its payload")
	require.Equal(t, domain.LedgerEntry{}, first[:5][3].LedgerEntry, "nothing of the previous batch stays behind the new one")
	require.Equal(t, "msg_room_4", kept.SvixID)
	require.Equal(t, keptPayload, string(kept.Payload), "a copy of a previous entry keeps its payload")

	none, err := eventstore.ScanAfterForTypes(ctx, db.Pool, second, second[2].Position, 5, []string{"user.created"})
	require.NoError(t, err)
	require.Empty(t, none)
}
