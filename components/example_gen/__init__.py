"""SpanWindowCsvExampleGen: CsvExampleGen over a window of spans in one execution.

TFX's file-based ExampleGen ingests exactly one span per execution (its input processor
rejects a static range whose start and end differ). A run here trains on several spans, so
this component resolves a window of spans, reads them all into one Examples artifact (one
StatisticsGen, one validation, one Transform analysis over the whole window) and records the
window on the artifact: `span` is the newest span and the custom property `spans` lists all.
"""
