-- What a fleet's instances cost per hour, fixed when the fleet is created, and where
-- that price came from (--price-per-hour, EC2 spot price history, the on-demand table).
-- An instance's cost is this price times its hours (launch to termination).
ALTER TABLE fleets
    ADD COLUMN price_per_hour double precision NOT NULL DEFAULT 0 CHECK (price_per_hour >= 0),
    ADD COLUMN price_source text NOT NULL DEFAULT 'not recorded (created before prices were)';
