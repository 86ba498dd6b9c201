package eventstore

import (
	"database/sql"
	"fmt"
	"strconv"
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

func (e rowEntry) setMetadata(m message.Metadata) {
	m.Set(MetaOffset, strconv.FormatInt(e.offset, 10))
	m.Set(MetaSvixID, e.svixID)
	m.Set(MetaSource, e.source)
	m.Set(MetaEventType, e.eventType)
	m.Set(MetaSubjectID, e.subjectID)
	m.Set(MetaInstanceID, e.instanceID)
	m.Set(MetaTimestampUnit, e.timestampUnit)
	m.Set(MetaEventTime, formatTime(e.eventTime))
	m.Set(MetaReceivedAt, formatTime(e.receivedAt))
	if e.svixTimestamp.Valid {
		m.Set(MetaSvixTimestamp, formatTime(e.svixTimestamp.Time))
	}
	if e.signature.Valid {
		m.Set(MetaSignature, e.signature.String)
	}
	if e.sourceIP.Valid {
		m.Set(MetaSourceIP, e.sourceIP.String)
	}
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

// EntryFromMessage rebuilds the ledger entry from a message delivered by a
// subscriber on the ledger (see LedgerSchema.UnmarshalMessage).
func EntryFromMessage(msg *message.Message) (domain.LedgerEntry, error) {
	m := msg.Metadata
	e := domain.LedgerEntry{
		SvixID:        m.Get(MetaSvixID),
		Signature:     m.Get(MetaSignature),
		Source:        m.Get(MetaSource),
		EventType:     m.Get(MetaEventType),
		SubjectID:     m.Get(MetaSubjectID),
		InstanceID:    m.Get(MetaInstanceID),
		TimestampUnit: m.Get(MetaTimestampUnit),
		SourceIP:      m.Get(MetaSourceIP),
		Payload:       msg.Payload,
	}
	var err error
	if e.Offset, err = strconv.ParseInt(m.Get(MetaOffset), 10, 64); err != nil {
		return e, fmt.Errorf("message %s: no ledger offset in metadata", msg.UUID)
	}
	if e.EventTime, err = time.Parse(time.RFC3339Nano, m.Get(MetaEventTime)); err != nil {
		return e, fmt.Errorf("message %s: event time: %w", msg.UUID, err)
	}
	if e.ReceivedAt, err = time.Parse(time.RFC3339Nano, m.Get(MetaReceivedAt)); err != nil {
		return e, fmt.Errorf("message %s: received at: %w", msg.UUID, err)
	}
	if s := m.Get(MetaSvixTimestamp); s != "" {
		if e.SvixTimestamp, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return e, fmt.Errorf("message %s: svix timestamp: %w", msg.UUID, err)
		}
	}
	return e, nil
}
