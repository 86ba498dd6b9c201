package eventstore

import (
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Topic is the Watermill topic of the ledger. The schema adapter maps it to
// the ledger_events table whatever its name, so it only labels logs and
// metrics.
const Topic = "ledger"

// Table names, created by the migrations.
const (
	EventsTable  = "ledger_events"
	OffsetsTable = "ledger_offsets"
)

// Metadata keys under which a Watermill message carries a ledger entry's
// facts. The schema adapter writes them to their own columns.
const (
	MetaSvixID        = "svix_id"
	MetaSvixTimestamp = "svix_timestamp"
	MetaSignature     = "signature"
	MetaSource        = "source"
	MetaEventType     = "event_type"
	MetaSubjectID     = "subject_id"
	MetaInstanceID    = "instance_id"
	MetaEventTime     = "event_time"
	MetaTimestampUnit = "timestamp_unit"
	MetaReceivedAt    = "received_at"
	MetaSourceIP      = "source_ip"
)

var factKeys = []string{
	MetaSvixID, MetaSource, MetaSvixTimestamp, MetaSignature, MetaEventType, MetaSubjectID,
	MetaInstanceID, MetaEventTime, MetaTimestampUnit, MetaReceivedAt, MetaSourceIP,
}

// insertColumns lists the columns the publisher fills, in factKeys order
// after uuid and payload. "offset" and transaction_id are not among them:
// the ledger's triggers assign both under the append lock (see order.go).
const insertColumns = `uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, source_ip`

// selectColumns is what the ledger's readers read back.
const selectColumns = `"offset", transaction_id, uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, host(source_ip)`

// LedgerSchema is watermill-sql's SchemaAdapter for ledger_events: the
// facts of an entry get their own typed columns, the raw body goes to a
// BYTEA column untouched. Schema creation is left to the migrations
// (SchemaInitializingQueries returns an error if ever called).
type LedgerSchema struct{}

var _ wsql.SchemaAdapter = LedgerSchema{}

// InsertQuery inserts the messages in one statement. A row whose svix-id
// is already in the ledger (or earlier in the same statement) is skipped,
// not an error: the store tells new from duplicate entries by reading back
// which message uuid holds each svix-id (see batch.go).
func (s LedgerSchema) InsertQuery(params wsql.InsertQueryParams) (wsql.Query, error) {
	args := make([]any, 0, len(params.Msgs)*insertWidth)
	for _, msg := range params.Msgs {
		var err error
		if args, err = appendInsertArgs(args, msg); err != nil {
			return wsql.Query{}, err
		}
	}
	return wsql.Query{Query: insertQuery(len(params.Msgs)), Args: args}, nil
}

// insertWidth is how many parameters a row of the INSERT takes: uuid,
// payload, metadata and the facts.
var insertWidth = 3 + len(factKeys)

// insertQueries holds the INSERT text by number of rows (at most
// Config.MaxBatch kinds): it is the same for every batch of a size, and
// writing its placeholders took a formatted print per parameter (14 a
// row) and 1.9 kB allocated per event.
var insertQueries sync.Map // int → string

// insertQuery is the INSERT of rows rows, parameters numbered row by row.
func insertQuery(rows int) string {
	if q, ok := insertQueries.Load(rows); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + EventsTable + ` (` + insertColumns + `) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("(")
		for j := range insertWidth {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("$")
			b.WriteString(strconv.Itoa(i*insertWidth + j + 1))
		}
		b.WriteString(")")
	}
	b.WriteString(" ON CONFLICT (svix_id) DO NOTHING")
	q, _ := insertQueries.LoadOrStore(rows, b.String())
	return q.(string)
}

// appendInsertArgs appends msg's row of INSERT parameters (insertWidth of
// them) to args.
func appendInsertArgs(args []any, msg *message.Message) ([]any, error) {
	var extra map[string]string
	for k, v := range msg.Metadata {
		if !isFact(k) {
			if extra == nil {
				extra = map[string]string{}
			}
			extra[k] = v
		}
	}
	var metadata []byte
	if extra != nil {
		var err error
		if metadata, err = json.Marshal(extra); err != nil {
			return nil, fmt.Errorf("message %s: encode metadata: %w", msg.UUID, err)
		}
	}
	args = append(args, msg.UUID, []byte(msg.Payload), metadata)
	for _, k := range factKeys {
		v := msg.Metadata.Get(k)
		if v == "" && k != MetaSvixTimestamp && k != MetaSignature && k != MetaSourceIP {
			return nil, fmt.Errorf("message %s: metadata %q is required", msg.UUID, k)
		}
		if v == "" {
			args = append(args, nil)
			continue
		}
		args = append(args, v)
	}
	return args, nil
}

func isFact(k string) bool {
	for _, f := range factKeys {
		if f == k {
			return true
		}
	}
	return false
}

// SelectQuery refuses: webhookd appends through watermill-sql's publisher
// but reads the ledger with its own positioned reads (ScanAfter, in safe
// order, see order.go), not with watermill-sql's subscriber.
func (s LedgerSchema) SelectQuery(wsql.SelectQueryParams) (wsql.Query, error) {
	return wsql.Query{}, errSubscribe
}

// UnmarshalMessage refuses, as SelectQuery.
func (s LedgerSchema) UnmarshalMessage(wsql.UnmarshalMessageParams) (wsql.Row, error) {
	return wsql.Row{}, errSubscribe
}

var errSubscribe = errors.New("the ledger is read with eventstore.ScanAfter, not with a watermill-sql subscriber")

// SchemaInitializingQueries refuses: the schema comes only from the
// versioned migrations, and Watermill's AutoInitializeSchema stays off.
func (s LedgerSchema) SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, errors.New("the ledger schema is created by `webhookd migrate`, not by Watermill")
}

// SubscribeIsolationLevel is READ COMMITTED; no subscriber uses it (see
// SelectQuery).
func (s LedgerSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelReadCommitted
}
