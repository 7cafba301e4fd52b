"""Putting a policy to work and watching it: the promotion gate, model sources and loading,
the runtime a process serves from, and monitoring."""
