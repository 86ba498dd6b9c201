package loadgen

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuSample is the CPU time used so far by the three parties of a run on
// this machine: the load generator (this process), webhookd (the child)
// and every PostgreSQL process (when the server runs here; zero
// otherwise).
type cpuSample struct {
	generator, webhookd, postgres time.Duration
}

// sampleCPU reads the CPU times from /proc. postmaster is the pid of the
// server's postmaster (0: every process named postgres, see postgresCPU).
func sampleCPU(child *Process, postmaster int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.generator, err = cpuTime(os.Getpid()); err != nil {
		return s, err
	}
	if s.webhookd, err = child.CPUTime(); err != nil {
		return s, err
	}
	s.postgres = postgresCPU(postmaster)
	return s, nil
}

// postgresCPU sums the CPU time of the server's processes, and of those
// that have exited: a backend or autovacuum worker that ends is reaped by
// the postmaster, whose children's times then hold its time. The server's
// processes are its postmaster and the postmaster's children; other
// PostgreSQL servers on the machine (another cluster, another user's
// tests) are not counted. With postmaster 0 (the server is not on this
// machine, or its postmaster is unknown) every process named postgres
// counts.
func postgresCPU(postmaster int) time.Duration {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	var total time.Duration
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil || strings.TrimSpace(string(b)) != "postgres" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		if err != nil {
			continue
		}
		if postmaster != 0 && pid != postmaster {
			if ppid, err := parentPID(pid); err != nil || ppid != postmaster {
				continue
			}
		}
		if t, err := cpuTime(pid); err == nil {
			total += t
		}
		if t, err := childrenCPUTime(pid); err == nil {
			total += t
		}
	}
	return total
}

// parentPID returns the parent of pid (field 4 of /proc/<pid>/stat).
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, os.ErrInvalid
	}
	return strconv.Atoi(fields[1])
}

// postmasterOf returns the postmaster of the backend serving a
// connection (the parent of pg_backend_pid()), or 0 when that backend is
// not a process of this machine (a remote server, another PID namespace).
func postmasterOf(backend int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(backend) + "/comm")
	if err != nil || strings.TrimSpace(string(b)) != "postgres" {
		return 0
	}
	ppid, err := parentPID(backend)
	if err != nil {
		return 0
	}
	return ppid
}

// CPUPerEvent is CPU time per event, in microseconds, of each party
// during one phase of a run.
type CPUPerEvent struct {
	Generator float64 `json:"generator_us"`
	Webhookd  float64 `json:"webhookd_us"`
	Postgres  float64 `json:"postgres_us"`
	Total     float64 `json:"total_us"`
}

func perEvent(from, to cpuSample, events int) CPUPerEvent {
	us := func(d time.Duration) float64 {
		return float64(int(d.Seconds()*1e6/float64(events)*10+0.5)) / 10
	}
	c := CPUPerEvent{
		Generator: us(to.generator - from.generator),
		Webhookd:  us(to.webhookd - from.webhookd),
		Postgres:  us(to.postgres - from.postgres),
	}
	c.Total = us((to.generator - from.generator) + (to.webhookd - from.webhookd) + (to.postgres - from.postgres))
	return c
}
