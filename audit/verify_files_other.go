//go:build !unix

package audit

// openFlags: where there is no O_NOFOLLOW, openRegular's checks before and
// after the open refuse links and special files.
const openFlags = 0
