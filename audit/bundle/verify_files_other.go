//go:build !unix

package bundle

// openFlags: where there is no O_NOFOLLOW, openRegular's checks before and
// after the open refuse links and special files.
const openFlags = 0
