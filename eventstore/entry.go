package eventstore

import (
	"database/sql"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/webhookd/webhookd/domain"
)

// rowEntry receives a scanned ledger row.
type rowEntry struct {
	offset                               int64
	svixID, source, eventType, subjectID string
	instanceID, timestampUnit            string
	signature, sourceIP                  sql.NullString
	svixTimestamp                        sql.NullTime
	eventTime, receivedAt                time.Time
}

func (e rowEntry) entry(payload []byte) domain.LedgerEntry {
	out := domain.LedgerEntry{
		Offset:        e.offset,
		SvixID:        e.svixID,
		Signature:     e.signature.String,
		Source:        e.source,
		EventType:     e.eventType,
		SubjectID:     e.subjectID,
		InstanceID:    e.instanceID,
		EventTime:     e.eventTime.UTC(),
		TimestampUnit: e.timestampUnit,
		ReceivedAt:    e.receivedAt.UTC(),
		SourceIP:      e.sourceIP.String,
		Payload:       payload,
	}
	if e.svixTimestamp.Valid {
		out.SvixTimestamp = e.svixTimestamp.Time.UTC()
	}
	return out
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// NewMessage turns an entry into the Watermill message the publisher
// appends: the payload untouched, the facts in metadata.
func NewMessage(e domain.LedgerEntry) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), e.Payload)
	m := msg.Metadata
	m.Set(MetaSvixID, e.SvixID)
	m.Set(MetaSource, e.Source)
	m.Set(MetaEventType, e.EventType)
	m.Set(MetaSubjectID, e.SubjectID)
	m.Set(MetaInstanceID, e.InstanceID)
	m.Set(MetaTimestampUnit, e.TimestampUnit)
	m.Set(MetaEventTime, formatTime(e.EventTime))
	m.Set(MetaReceivedAt, formatTime(e.ReceivedAt))
	if !e.SvixTimestamp.IsZero() {
		m.Set(MetaSvixTimestamp, formatTime(e.SvixTimestamp))
	}
	if e.Signature != "" {
		m.Set(MetaSignature, e.Signature)
	}
	if e.SourceIP != "" {
		m.Set(MetaSourceIP, e.SourceIP)
	}
	return msg
}
