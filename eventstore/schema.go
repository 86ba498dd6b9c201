package eventstore

import (
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
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
	MetaOffset        = "ledger_offset"
)

var factKeys = []string{
	MetaSvixID, MetaSource, MetaSvixTimestamp, MetaSignature, MetaEventType, MetaSubjectID,
	MetaInstanceID, MetaEventTime, MetaTimestampUnit, MetaReceivedAt, MetaSourceIP,
}

// insertColumns lists the columns the publisher fills, in factKeys order
// after uuid and payload. "offset" and transaction_id are not among them:
// the ledger's triggers assign both under the append lock (see order.go).
const insertColumns = `uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, source_ip`

// selectColumns is what the subscriber reads back.
const selectColumns = `"offset", transaction_id, uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, host(source_ip)`

// LedgerSchema is watermill-sql's SchemaAdapter for ledger_events: the
// facts of an entry get their own typed columns, the raw body goes to a
// BYTEA column untouched. Schema creation is left to the migrations
// (SchemaInitializingQueries returns an error if ever called).
type LedgerSchema struct {
	// SubscribeBatchSize is how many rows a subscriber reads per query.
	// Defaults to 100.
	SubscribeBatchSize int
}

var _ wsql.SchemaAdapter = LedgerSchema{}

// InsertQuery inserts the messages in one statement. A row whose svix-id
// is already in the ledger (or earlier in the same statement) is skipped,
// not an error: the store tells new from duplicate entries by reading back
// which message uuid holds each svix-id (see batch.go).
func (s LedgerSchema) InsertQuery(params wsql.InsertQueryParams) (wsql.Query, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + EventsTable + ` (` + insertColumns + `) VALUES `)
	args := make([]any, 0, len(params.Msgs)*(3+len(factKeys)))
	for i, msg := range params.Msgs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("(")
		row, err := insertArgs(msg)
		if err != nil {
			return wsql.Query{}, err
		}
		for j := range row {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "$%d", len(args)+j+1)
		}
		args = append(args, row...)
		b.WriteString(")")
	}
	b.WriteString(" ON CONFLICT (svix_id) DO NOTHING")
	return wsql.Query{Query: b.String(), Args: args}, nil
}

func insertArgs(msg *message.Message) ([]any, error) {
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
	args := []any{msg.UUID, []byte(msg.Payload), metadata}
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

// SelectQuery reads the next batch after the consumer group's position, in
// safe order (order.go): appends commit in (transaction_id, offset) order,
// so no row can commit behind the position.
//
// The query is shaped so that PostgreSQL reads only the batch, in
// primary key order from the position, whatever the ledger's size:
//   - the position is compared as a row, (transaction_id, offset) >
//     (tx, off), an index range condition; watermill-sql's own form,
//     (tx = X AND offset > Y) OR tx > X, means the same but is only a
//     filter, so every poll walked the index from the ledger's first row
//     (2.4 ms instead of 0.05 ms with 10,000 rows behind the position);
//   - ORDER BY and LIMIT are on the query that reads the ledger, not on
//     an outer SELECT * FROM (WITH … SELECT …) as in watermill-sql: a
//     subquery with a WITH is planned on its own, without the LIMIT, so
//     PostgreSQL fetched every row after the position and sorted them
//     for the first 100 (34 ms instead of 0.2 ms with 20,000 behind; a
//     projection that fell behind got slower the further it fell).
func (s LedgerSchema) SelectQuery(params wsql.SelectQueryParams) (wsql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(wsql.NextOffsetQueryParams{
		Topic: params.Topic, ConsumerGroup: params.ConsumerGroup,
	})
	if err != nil {
		return wsql.Query{}, err
	}
	q := `
	WITH last_processed AS (` + next.Query + `)
	SELECT ` + selectColumns + ` FROM ` + EventsTable + `
	WHERE ` + AfterPosition(`(SELECT last_processed_transaction_id FROM last_processed)`,
		`(SELECT coalesce(offset_acked, 0) FROM last_processed)`) + `
	ORDER BY ` + SafeOrder + `
	LIMIT ` + fmt.Sprint(s.batchSize())
	// Planned at every execution, not once as a prepared statement: a
	// plan made while the ledger was small (a fresh install, the first
	// minute before autovacuum analyzes it) is a sequential scan and a
	// sort, and a prepared statement keeps it for the connection's life.
	// Planned each time, it is the range scan above once the ledger has
	// a few pages. QueryExecModeCacheDescribe runs it as an unnamed
	// statement (planned at each execution) with binary results;
	// QueryExecModeExec would ask for text, and the payloads would travel
	// as hex and be decoded back. pgx takes the mode as the first
	// argument.
	args := append([]any{pgx.QueryExecModeCacheDescribe}, next.Args...)
	return wsql.Query{Query: q, Args: args}, nil
}

func (s LedgerSchema) batchSize() int {
	if s.SubscribeBatchSize <= 0 {
		return 100
	}
	return s.SubscribeBatchSize
}

// UnmarshalMessage turns a ledger row into a Watermill message whose
// metadata carries the entry's facts (see EntryFromMessage).
func (s LedgerSchema) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	var (
		r        wsql.Row
		txID     wsql.XID8
		e        rowEntry
		metadata []byte
	)
	err := params.Row.Scan(&r.Offset, &txID, &r.UUID, &r.Payload, &metadata,
		&e.svixID, &e.source, &e.svixTimestamp, &e.signature, &e.eventType, &e.subjectID,
		&e.instanceID, &e.eventTime, &e.timestampUnit, &e.receivedAt, &e.sourceIP)
	if err != nil {
		return wsql.Row{}, fmt.Errorf("scan ledger row: %w", err)
	}
	msg := message.NewMessage(string(r.UUID), r.Payload)
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &msg.Metadata); err != nil {
			return wsql.Row{}, fmt.Errorf("ledger row %d: decode metadata: %w", r.Offset, err)
		}
	}
	e.offset = r.Offset
	e.setMetadata(msg.Metadata)
	r.Msg = msg
	r.Metadata = metadata
	r.ExtraData = map[string]any{"transaction_id": txID}
	return r, nil
}

// SchemaInitializingQueries refuses: the schema comes only from the
// versioned migrations, and Watermill's AutoInitializeSchema stays off.
func (s LedgerSchema) SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, errors.New("the ledger schema is created by `webhookd migrate`, not by Watermill")
}

// SubscribeIsolationLevel is READ COMMITTED, not the REPEATABLE READ of
// watermill-sql's own PostgreSQL schema. Exactly-once comes from the
// FOR UPDATE on the consumer's offsets row, which READ COMMITTED re-reads
// at its newest version after waiting; and a projection's writes must see
// rows committed while the batch waited. Under REPEATABLE READ a batch
// whose snapshot predates a rebuild's swap (or any other committed change
// to the same rows) fails every retry with "could not serialize access"
// until its ack deadline, since watermill-sql retries inside the same
// transaction.
func (s LedgerSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelReadCommitted
}

// OffsetsAdapter returns watermill-sql's PostgreSQL offsets adapter on the
// ledger_offsets table.
func OffsetsAdapter() wsql.OffsetsAdapter {
	return wsql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(string) string { return OffsetsTable },
	}
}
