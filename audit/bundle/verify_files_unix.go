//go:build unix

package bundle

import "syscall"

// openFlags makes opening a bundle file refuse a symbolic link (ELOOP) and
// return at once on a named pipe instead of waiting for a writer; the
// verifier then refuses the pipe as not a regular file.
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
