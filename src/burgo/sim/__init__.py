"""The demo town: a simulated small town's sensors, fed to Burgo through its real ingestion paths.

``town`` lays the town out, ``climate`` and ``sensors`` say what each sensor reads at a moment
(pure and deterministic given a seed), ``wire`` puts readings in the formats devices and network
servers send, and ``feed`` drives a Burgo server with them over HTTP.
"""
