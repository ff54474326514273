-- Budgets in dollars. A sweep's (`budget: {max_cost_usd}` in its file) caps what its
-- trials cost; a fleet's (`fleet up --max-cost`) caps what its instances cost. When the
-- cost so far plus what the running work will cost until it is wound down (one
-- reconcile pass and one lease) would pass the budget, the budget is marked exhausted:
-- the sweep's trials are handed back (checkpointed) and no more are leased, or the
-- fleet's workers hand their trials back and it scales to zero. Raising the budget
-- clears the mark.
ALTER TABLE sweeps
    ADD COLUMN max_cost_usd double precision CHECK (max_cost_usd > 0),
    ADD COLUMN budget_exhausted_at timestamptz;
ALTER TABLE fleets
    ADD COLUMN max_cost_usd double precision CHECK (max_cost_usd > 0),
    ADD COLUMN budget_exhausted_at timestamptz;
