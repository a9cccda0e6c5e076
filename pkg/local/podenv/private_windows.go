package podenv

// Windows has no O_NOFOLLOW; O_EXCL creates a new file, never opens a link.
const oNoFollow = 0
