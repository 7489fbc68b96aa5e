"""Low-level primitives. **Hazardous materials**: use the session API unless you know why not.

Nothing here checks partitions, rotates keys or wipes what you pass in. It exists so the
engine, the KMS drivers and the benchmarks share one exact implementation of the wire format.
"""
