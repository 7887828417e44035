//! RFC 1071 Internet checksum.
