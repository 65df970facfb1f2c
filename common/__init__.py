"""The shared base: what pattern servers and the runner both stand on (the dataset, the
event format and publish plan, the clock and schedule, the histogram, the server runtime).
It imports nothing from `bench` or `patterns`; both import it."""
