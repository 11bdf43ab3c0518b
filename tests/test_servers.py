"""The fixtures' real servers answer, and round-trip a point and a message."""

from rivermon.core.influx import line


def test_influx_fixture_stores_and_returns_a_point(influx):
    influx.write_lines([line("telemetry", {"creek": "huanglong", "node": "a b"}, {"do_mg_l": 5.5}, 1764201600500)])
    rows = influx.rows('SELECT "do_mg_l", "node" FROM "telemetry"')
    assert rows == [{"time": 1764201600500, "do_mg_l": 5.5, "node": "a b"}]


def test_broker_fixture_delivers_a_qos1_message(collector, prefix, broker_url):
    from rivermon.core.mqtt import make_client, parse_broker_url

    c = collector([f"{prefix}/#"])
    pub = make_client(broker_url, "pub-test")
    u = parse_broker_url(broker_url)
    pub.connect(u.host, u.port)
    pub.loop_start()
    pub.publish(f"{prefix}/huanglong/hl1-s1/telemetry", b'{"ts": 1, "do_mg_l": 1}', qos=1).wait_for_publish(5)
    assert c.wait_for(lambda msgs: len(msgs) == 1)
    pub.loop_stop()
    pub.disconnect()
    assert c.messages[0].payload == b'{"ts": 1, "do_mg_l": 1}'
    assert broker_url != "mqtt://127.0.0.1:1883"
