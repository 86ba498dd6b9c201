package domain_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
)

func TestParseEnvelopeFixtures(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../shared/fixtures/clerk/*.json")
	require.NoError(t, err)
	require.Len(t, files, 5)
	for _, f := range files {
		body, err := os.ReadFile(f)
		require.NoError(t, err)
		env, err := domain.ParseEnvelope(body)
		require.NoError(t, err, f)
		require.Equal(t, filepath.Base(f), env.Type+".json")
		require.NotEmpty(t, env.SubjectID)
		require.NotEmpty(t, env.InstanceID)
	}
}

func TestParseEnvelopeTimestampUnits(t *testing.T) {
	t.Parallel()
	const tmpl = `{"object":"event","type":"user.updated","instance_id":"ins_1","data":{"id":"user_1"},"timestamp":`
	env, err := domain.ParseEnvelope([]byte(tmpl + `1654012591835}`))
	require.NoError(t, err)
	require.Equal(t, domain.UnitMilliseconds, env.TimestampUnit)
	require.Equal(t, time.Date(2022, 5, 31, 15, 56, 31, 835e6, time.UTC), env.Time)

	env, err = domain.ParseEnvelope([]byte(tmpl + `1716883200}`))
	require.NoError(t, err)
	require.Equal(t, domain.UnitSeconds, env.TimestampUnit)
	require.Equal(t, time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC), env.Time)

	for _, bad := range []string{`-5}`, `0}`, `1.5}`, `null}`, `"1716883200"}`} {
		_, err := domain.ParseEnvelope([]byte(tmpl + bad))
		require.Error(t, err, bad)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	}
}

func TestParseEnvelopeErrorsDoNotQuoteValues(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"object":"event","type":"jane.doe@example.com","instance_id":"ins_1","timestamp":1,"data":{"id":"u"}}`,
		`{"object":"jane.doe@example.com"}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":{"id":"jane\u0000doe"}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":{"id":["jane.doe@example.com"]}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":"jane.doe@example.com"}`,
		`{"first_name": "Jane", "email": jane.doe@example.com}`,
	} {
		_, err := domain.ParseEnvelope([]byte(body))
		require.Error(t, err, body)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
		require.NotContains(t, err.Error(), "jane", body)
		require.NotContains(t, err.Error(), "Jane", body)
	}
}
