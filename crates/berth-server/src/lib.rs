//! berth serve.
