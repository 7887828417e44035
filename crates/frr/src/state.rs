//! vtysh's JSON → what edgevip reports. Parsed leniently (FRR adds fields between
//! releases): a missing field is `None`/default, never an error; only text that is not
//! JSON at all is.
