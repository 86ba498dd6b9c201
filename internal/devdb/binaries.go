package devdb

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
)

// EnvBinaries names the environment variable that chooses the PostgreSQL binaries: a
// directory containing bin/pg_ctl, bin/initdb and bin/postgres (the bin directory
// itself is accepted too). When it is set, no other binaries are considered.
const EnvBinaries = "WEBHOOKD_PG_BINARIES"

// minMajor is the oldest PostgreSQL webhookd runs on (xid8 arrived in 13).
const minMajor = 13

// downloadVersion is what the library downloads when nothing is installed and no data
// directory asks for another major version.
const downloadVersion = embeddedpostgres.V18

// libraryVersions maps a major version to the release the library downloads.
var libraryVersions = map[int]embeddedpostgres.PostgresVersion{
	13: embeddedpostgres.V13,
	14: embeddedpostgres.V14,
	15: embeddedpostgres.V15,
	16: embeddedpostgres.V16,
	17: embeddedpostgres.V17,
	18: embeddedpostgres.V18,
}

// installPatterns are where packaged PostgreSQL servers put their bin/ directory,
// one directory per major version.
var installPatterns = []string{
	"/usr/lib/postgresql/*",                          // Debian, Ubuntu
	"/usr/pgsql-*",                                   // PGDG RPMs
	"/opt/homebrew/opt/postgresql@*",                 // Homebrew, Apple silicon
	"/usr/local/opt/postgresql@*",                    // Homebrew, Intel
	"/Applications/Postgres.app/Contents/Versions/*", // Postgres.app
}

// binaries is a PostgreSQL installation, or (dir empty) the release to download.
type binaries struct {
	dir     string // contains bin/; what embeddedpostgres.Config.BinariesPath wants
	major   int
	version embeddedpostgres.PostgresVersion
}

// FindBinaries looks for an installed PostgreSQL 13 or newer and returns the directory
// that contains its bin/ (what embedded-postgres' BinariesPath wants). If EnvBinaries is
// set, only that directory is considered (and ok is false when it is unusable).
// Otherwise it searches the usual package locations (/usr/lib/postgresql/<ver>,
// /usr/pgsql-<ver>, Homebrew, Postgres.app) and pg_ctl on PATH, newest major version
// first. When ok is false, Start lets the library download binaries instead.
func FindBinaries() (dir string, ok bool) {
	ctx := context.Background()
	if env := os.Getenv(EnvBinaries); env != "" {
		b, err := inspectBinaries(ctx, env)
		if err != nil || b.major < minMajor {
			return "", false
		}
		return b.dir, true
	}
	found := installedBinaries(ctx)
	if len(found) == 0 {
		return "", false
	}
	return found[0].dir, true
}

// chooseBinaries picks binaries that can run the data directory: the same major
// version as its PG_VERSION (dataMajor, 0 for a new one), never a silent upgrade,
// because the library wipes a data directory written by another version.
func chooseBinaries(ctx context.Context, dataDir string, dataMajor int) (binaries, error) {
	mismatch := func(have string) error {
		return fmt.Errorf("devdb: %s holds PostgreSQL %d data, but %s: install PostgreSQL %d (or set %s to it), or delete %s to start with an empty database",
			dataDir, dataMajor, have, dataMajor, EnvBinaries, dataDir)
	}

	if env := os.Getenv(EnvBinaries); env != "" {
		b, err := inspectBinaries(ctx, env)
		if err != nil {
			return binaries{}, fmt.Errorf("devdb: %s=%s: %w", EnvBinaries, env, err)
		}
		if b.major < minMajor {
			return binaries{}, fmt.Errorf("devdb: %s=%s is PostgreSQL %d; webhookd needs %d or newer", EnvBinaries, env, b.major, minMajor)
		}
		if dataMajor != 0 && b.major != dataMajor {
			return binaries{}, mismatch(fmt.Sprintf("%s=%s is PostgreSQL %d", EnvBinaries, env, b.major))
		}
		return b, nil
	}

	found := installedBinaries(ctx)
	if len(found) == 0 {
		if dataMajor == 0 {
			return binaries{version: downloadVersion}, nil
		}
		v, ok := libraryVersions[dataMajor]
		if !ok {
			return binaries{}, mismatch("no PostgreSQL is installed and the library cannot download that version")
		}
		return binaries{major: dataMajor, version: v}, nil
	}
	if dataMajor == 0 {
		return found[0], nil
	}
	var have []string
	for _, b := range found {
		if b.major == dataMajor {
			return b, nil
		}
		have = append(have, fmt.Sprintf("%d (%s)", b.major, b.dir))
	}
	return binaries{}, mismatch("the installed PostgreSQL is " + strings.Join(have, ", "))
}

// installedBinaries lists usable installations, newest major version first.
func installedBinaries(ctx context.Context) []binaries {
	var dirs []string
	for _, pattern := range installPatterns {
		matches, _ := filepath.Glob(pattern) // the patterns are well-formed
		dirs = append(dirs, matches...)
	}
	if pgCtl, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(pgCtl); err == nil {
			dirs = append(dirs, filepath.Dir(filepath.Dir(real)))
		}
	}

	var found []binaries
	seen := map[string]bool{}
	for _, dir := range dirs {
		b, err := inspectBinaries(ctx, dir)
		if err != nil || b.major < minMajor {
			continue
		}
		real, err := filepath.EvalSymlinks(b.dir)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		found = append(found, b)
	}
	slices.SortStableFunc(found, func(a, b binaries) int { return cmp.Compare(b.major, a.major) })
	return found
}

// inspectBinaries checks that dir (or its parent, when dir is a bin directory) holds
// the programs the library runs, and asks postgres for its version.
func inspectBinaries(ctx context.Context, dir string) (binaries, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, err
	}
	if filepath.Base(dir) == "bin" && isExecutable(filepath.Join(dir, "pg_ctl")) {
		dir = filepath.Dir(dir)
	}
	for _, prog := range []string{"pg_ctl", "initdb", "postgres"} {
		if !isExecutable(filepath.Join(dir, "bin", prog)) {
			return binaries{}, fmt.Errorf("no executable bin/%s in %s", prog, dir)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "bin", "postgres"), "--version").Output()
	if err != nil {
		return binaries{}, fmt.Errorf("run %s --version: %w", filepath.Join(dir, "bin", "postgres"), err)
	}
	major, err := parseMajor(string(out))
	if err != nil {
		return binaries{}, err
	}
	v, ok := libraryVersions[major]
	if !ok {
		// With BinariesPath set the library uses the version only to recognise a data
		// directory (PG_VERSION is a prefix of it), so the major version suffices.
		v = embeddedpostgres.PostgresVersion(strconv.Itoa(major))
	}
	return binaries{dir: dir, major: major, version: v}, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// parseMajor reads the major version from `postgres --version` output, such as
// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)".
func parseMajor(versionOutput string) (int, error) {
	m := versionRE.FindStringSubmatch(versionOutput)
	if m == nil {
		return 0, fmt.Errorf("unrecognised postgres --version output %q", strings.TrimSpace(versionOutput))
	}
	major, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, fmt.Errorf("unrecognised postgres --version output %q: %w", strings.TrimSpace(versionOutput), err)
	}
	return major, nil
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}
