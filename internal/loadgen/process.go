package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessConfig describes one `webhookd serve` child process.
type ProcessConfig struct {
	// Binary is the webhookd executable. Defaults to os.Executable().
	Binary string
	// DatabaseURL is passed as DATABASE_URL.
	DatabaseURL string
	// Secret is passed as CLERK_WEBHOOK_SIGNING_SECRET.
	Secret string
	// Addr is the listen address (WEBHOOKD_ADDR). Defaults to a free
	// 127.0.0.1 port.
	Addr string
	// Migrate adds --migrate.
	Migrate bool
	// Env holds further NAME=value settings (LOG_LEVEL, …).
	Env []string
	// Output receives the child's stdout and stderr. Defaults to discarding them.
	Output io.Writer
}

// Process is a running webhookd child.
type Process struct {
	cfg  ProcessConfig
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start starts `webhookd serve` with cfg; it does not wait for readiness
// (see WaitReady). The environment is the parent's, without any setting
// webhookd reads, plus cfg's.
func Start(cfg ProcessConfig) (*Process, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Binary = exe
	}
	if cfg.Addr == "" {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		cfg.Addr = addr
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	args := []string{"serve"}
	if cfg.Migrate {
		args = append(args, "--migrate")
	}
	cmd := exec.Command(cfg.Binary, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WEBHOOKD_") || strings.HasPrefix(name, "CLERK_WEBHOOK_") || name == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"DATABASE_URL="+cfg.DatabaseURL,
		"CLERK_WEBHOOK_SIGNING_SECRET="+cfg.Secret,
		"WEBHOOKD_ADDR="+cfg.Addr,
	)
	cmd.Env = append(env, cfg.Env...)
	cmd.Stdout, cmd.Stderr = cfg.Output, cfg.Output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", cfg.Binary, err)
	}
	p := &Process{cfg: cfg, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Addr is the process's listen address, host:port.
func (p *Process) Addr() string { return p.cfg.Addr }

// BaseURL is http://Addr.
func (p *Process) BaseURL() string { return "http://" + p.cfg.Addr }

// WebhookURL is the Clerk webhook endpoint of the process.
func (p *Process) WebhookURL() string { return p.BaseURL() + "/webhooks/clerk" }

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitReady polls GET /readyz until it answers 200, the process exits or
// timeout passes.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL()+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("webhookd serve exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("webhookd serve was not ready on %s within %s", p.cfg.Addr, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then kills.
// It returns the exit error of a process that did not end cleanly.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return errors.New("webhookd serve did not stop on SIGTERM within " + timeout.String())
	}
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM in
// /proc/<pid>/status); it must be read before the process ends.
func (p *Process) PeakRSS() (int64, error) {
	return peakRSS(p.PID())
}

func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no VmHWM in /proc/<pid>/status")
}

// CPUTime returns the CPU time (user and system) the process has used so
// far, to the kernel's clock tick (10 ms).
func (p *Process) CPUTime() (time.Duration, error) {
	return cpuTime(p.PID())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func cpuTime(pid int) (time.Duration, error) {
	return statTimes(pid, 11, 13)
}

// childrenCPUTime returns the CPU time of pid's children that have exited
// and been waited for (cutime and cstime).
func childrenCPUTime(pid int) (time.Duration, error) {
	return statTimes(pid, 13, 15)
}

// statTimes sums fields [from, to) of /proc/<pid>/stat, counted after the
// command name, in clock ticks.
func statTimes(pid, from, to int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime, stime, cutime and cstime are fields 14 to 17, the 12th to
	// 15th after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < to {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var total int64
	for _, f := range fields[from:to] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += n
	}
	return time.Duration(total) * clockTick, nil
}
