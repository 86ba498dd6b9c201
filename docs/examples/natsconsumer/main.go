// Command natsconsumer prints the Clerk user events webhookd forwards to
// NATS JetStream (README, "Forwarding to NATS JetStream"), acknowledging
// each: a durable consumer resumes where it stopped.
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	nc, err := nats.Connect(cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cons, err := js.CreateOrUpdateConsumer(context.Background(), cmp.Or(os.Getenv("STREAM"), "CLERK"), jetstream.ConsumerConfig{
		Durable: "scheduling", FilterSubject: cmp.Or(os.Getenv("SUBJECT"), "clerk.user.*"), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		// m.Data() is Clerk's event, byte for byte as Clerk signed it.
		fmt.Println(m.Subject(), m.Headers().Get("Svix-Id"), m.Headers().Get("Webhookd-Ledger-Offset"), len(m.Data()))
		_ = m.Ack()
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Stop()
	stop, _ := signal.NotifyContext(context.Background(), os.Interrupt)
	<-stop.Done()
}
