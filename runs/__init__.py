"""The Prefect-free run engine: fingerprints, planning rules, the state store and the stage
runner. Flows, tests and benchmarks drive it through a ``submit`` callable."""
