package devdb_test

import (
	"context"
	"fmt"
	"log"

	"github.com/webhookd/webhookd/internal/devdb"
)

// Start keeps the data in ./.webhookd/postgres/data across runs and serves it on
// 127.0.0.1:54329. Not run by go test: PostgreSQL needs a non-root user and a free port.
func ExampleStart() {
	db, err := devdb.Start(context.Background(), devdb.Options{})
	if err != nil {
		log.Fatal(err) // e.g. the port is taken, or running as root
	}
	defer db.Stop()

	fmt.Println(db.URL())
}
