-- A fleet's price over time: a spot fleet's price is read again from EC2's spot price
-- history while it runs (`--spot-price-refresh-minutes`), and a change starts a new
-- segment here. fleets.price_per_hour stays the current price. What an instance or an
-- attempt costs is the price integrated over its time: fleet_usd(fleet, from, to).
CREATE TABLE fleet_prices (
    fleet_id     uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    since        timestamptz NOT NULL,
    usd_per_hour double precision NOT NULL CHECK (usd_per_hour >= 0),
    source       text NOT NULL,
    PRIMARY KEY (fleet_id, since)
);
-- Every fleet starts with its price at creation (fleets made before this migration too).
INSERT INTO fleet_prices (fleet_id, since, usd_per_hour, source)
    SELECT id, created_at, price_per_hour, price_source FROM fleets;
CREATE FUNCTION fleet_first_price() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fleet_prices (fleet_id, since, usd_per_hour, source)
        VALUES (NEW.id, NEW.created_at, NEW.price_per_hour, NEW.price_source);
    RETURN NEW;
END $$;
CREATE TRIGGER fleet_first_price AFTER INSERT ON fleets FOR EACH ROW EXECUTE FUNCTION fleet_first_price();
-- When a spot fleet's price was last read (NULL: at creation).
ALTER TABLE fleets ADD COLUMN price_checked_at timestamptz;

-- USD a fleet's instance costs from t0 to t1: each price segment times its overlap.
CREATE FUNCTION fleet_usd(fleet uuid, t0 timestamptz, t1 timestamptz) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(p.usd_per_hour
                        * greatest(extract(epoch FROM least(t1, p.until) - greatest(t0, p.since)), 0)::float8
                        / 3600.0), 0)::float8
    FROM (SELECT usd_per_hour, since,
                 coalesce(lead(since) OVER (ORDER BY since), 'infinity'::timestamptz) AS until
          FROM fleet_prices WHERE fleet_id = fleet) p
$$;
