"""Exit statuses of every command, in one place (the README's table quotes them).

`run`: OK when the pipeline ran to completion (pushed, or not blessed by the Evaluator: the
summary says which); SERVING_GATE when the serving gate refused the model; DATA_GATE when the
data or drift gate stopped the run; BUSY when another run holds the root; USAGE for bad
arguments; FAILED for any other failure.
`verify`: OK when every check passes, FAILED when one fails, USAGE for bad arguments.
`monitor`: OK when every check passed; FINDINGS (3, as a gate's stop) when skew, prediction
drift or realized quality was found; USAGE when there is nothing to monitor (no logged
predictions in the period, no metadata store) or bad arguments.
Other commands: OK done; USAGE for bad arguments or input (a 5-field cron, an unknown
parameter, no pushed version, a version that does not exist); FAILED when a server or the
machine failed (KFP unreachable or refusing, a port in use).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_GATE = 3
EXIT_SERVING_GATE = 4
EXIT_BUSY = 5
EXIT_FINDINGS = EXIT_DATA_GATE  # `monitor` found something wrong
