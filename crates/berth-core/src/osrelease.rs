//! osrelease (in progress).
