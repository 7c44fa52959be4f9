"""Operations around runs: run, history, report, replay, schedule, lock, deploy, manifests."""
