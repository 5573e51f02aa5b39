"""domain-resolution: Go's name list, resolv.conf and /etc/hosts as Go reads them, DNS answers decoded (checked
against scapy's encoder), CNAME chains followed, and the step answering from a host's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR, dns_compress

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from reference_service import spec
from steps.base import StepContext
from steps.domain_resolution import (
    QTYPE_A,
    QTYPE_AAAA,
    QTYPE_CNAME,
    DomainResolutionStep,
    ResolverConf,
    candidates,
    decode_answer,
    encode_query,
    follow,
    read_hosts,
    read_resolv_conf,
    valid_domain,
)


def test_valid_domain() -> None:
    assert valid_domain("api.c.example.com") and valid_domain("api.c.example.com.") and valid_domain("a")
    for bad in ("", ".", "-a.com", "a-.com", "a..com", "a_b.com", "x" * 64 + ".com", "a." * 127 + "com"):
        assert not valid_domain(bad), bad


def test_candidates_follow_ndots_and_the_search_list() -> None:
    conf = ResolverConf(search=["lab.example", "example"], ndots=2)
    assert candidates("api.c.", conf) == ["api.c."]  # rooted: only as it is
    assert candidates("api.c", conf) == ["api.c.lab.example.", "api.c.example.", "api.c."]
    assert candidates("api.c.d", conf) == ["api.c.d.", "api.c.d.lab.example.", "api.c.d.example."]


def test_resolv_conf_and_hosts_as_go_reads_them(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/resolv.conf").write_text(
        "# comment\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver bogus\n"
        "search lab.example. example\noptions ndots:20 timeout:2 attempts:3 rotate\n")
    (tmp_path / "etc/hosts").write_text("127.0.0.1 localhost\n192.0.2.7 API.c.example.com api # x\n"
                                        "fd00::7 api.c.example.com.\nnot-an-ip name\n")
    conf = read_resolv_conf(Host(tmp_path))
    assert conf.nameservers == ["192.0.2.53", "fe80::1"] and conf.search == ["lab.example", "example"]
    assert (conf.ndots, conf.timeout, conf.attempts) == (15, 2, 3)
    assert read_hosts(Host(tmp_path)) == {"localhost": ["127.0.0.1"], "api.c.example.com": ["192.0.2.7", "fd00::7"],
                                          "api": ["192.0.2.7"]}
    assert read_resolv_conf(Host(tmp_path / "none")).nameservers == ["127.0.0.1", "::1"]


def test_the_query_is_what_scapy_reads() -> None:
    query = DNS(encode_query(0x1234, "api.c.example.com.", QTYPE_AAAA))
    assert (query.id, query.rd, query.qdcount) == (0x1234, 1, 1)
    assert (query.qd[0].qname, query.qd[0].qtype) == (b"api.c.example.com.", QTYPE_AAAA)


def test_answers_decoded_with_compression_and_cnames_followed() -> None:
    answer = DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname="api.c.example.com.", qtype="A"),
                 an=[DNSRR(rrname="api.c.example.com.", type="CNAME", rdata="lb.Example.com."),
                     DNSRR(rrname="lb.example.com.", type="CNAME", rdata="lb2.example.com."),
                     DNSRR(rrname="lb2.example.com.", type="A", rdata="192.0.2.9"),
                     DNSRR(rrname="other.example.com.", type="A", rdata="192.0.2.66")])
    compressed = dns_compress(answer)  # type: ignore[no-untyped-call]
    assert len(bytes(compressed)) < len(bytes(answer))  # the names are pointers now
    qid, got = decode_answer(bytes(compressed))
    assert qid == 7 and got.rcode == 0 and not got.truncated
    assert got.records == [("api.c.example.com.", QTYPE_CNAME, "lb.Example.com."),
                           ("lb.example.com.", QTYPE_CNAME, "lb2.example.com."),
                           ("lb2.example.com.", QTYPE_A, "192.0.2.9"),
                           ("other.example.com.", QTYPE_A, "192.0.2.66")]
    six = DNS(id=8, qr=1, qd=DNSQR(qname="api.c.example.com.", qtype="AAAA"),
              an=[DNSRR(rrname="lb2.example.com.", type="AAAA", rdata="fd00::9")])
    answers = {QTYPE_A: got, QTYPE_AAAA: decode_answer(bytes(six))[1]}
    assert follow("API.c.example.com.", answers) == ("lb2.example.com.", ["192.0.2.9"], ["fd00::9"])



def test_the_canonical_name_keeps_its_case_as_go_lookupcname_does() -> None:
    """Names match without case; the name returned is written as the query (or the CNAME record) wrote it."""
    plain = DNS(id=9, qr=1, qd=DNSQR(qname="Api.C.Example.com.", qtype="A"),
                an=[DNSRR(rrname="Api.C.Example.com.", type="A", rdata="192.0.2.10")])
    assert follow("Api.C.Example.com.", {QTYPE_A: decode_answer(bytes(plain))[1]}) == \
        ("Api.C.Example.com.", ["192.0.2.10"], [])
    aliased = DNS(id=10, qr=1, qd=DNSQR(qname="WWW.example.com.", qtype="A"),
                  an=[DNSRR(rrname="www.EXAMPLE.com.", type="CNAME", rdata="Edge.CDN.example.net."),
                      DNSRR(rrname="edge.cdn.example.net.", type="A", rdata="192.0.2.11")])
    assert follow("WWW.example.com.", {QTYPE_A: decode_answer(bytes(aliased))[1]}) == \
        ("Edge.CDN.example.net.", ["192.0.2.11"], [])


def test_nxdomain_and_truncation_are_read() -> None:
    _, nx = decode_answer(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="no.example."))))
    assert (nx.rcode, nx.records) == (3, [])
    _, tc = decode_answer(bytes(DNS(id=1, qr=1, tc=1, qd=DNSQR(qname="big.example."))))
    assert tc.truncated


def test_the_step_answers_from_etc_hosts_without_asking_dns(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts").write_text("192.0.2.7 api.c.example.com\nfd00::7 api.c.example.com\n"
                                        "192.0.2.8 api-int.c.example.com\n")
    # a nameserver that would never answer: the names must not need it
    (tmp_path / "etc/resolv.conf").write_text("nameserver 192.0.2.254\noptions timeout:30\n")
    step = DomainResolutionStep()
    params = step.parse_args([json.dumps({"domains": [{"domain_name": "api.c.example.com"},
                                                      {"domain_name": "api-int.c.example.com."}]})])
    result = step.run(params, StepContext(host=Host(tmp_path), config=AgentConfig()))
    output = json.loads(result.encoded_output())
    assert spec.errors("domain_resolution_response", output) == []
    assert output["resolutions"] == [
        {"cnames": ["api.c.example.com."], "domain_name": "api.c.example.com",
         "ipv4_addresses": ["192.0.2.7"], "ipv6_addresses": ["fd00::7"]},
        {"cnames": ["api-int.c.example.com."], "domain_name": "api-int.c.example.com.",
         "ipv4_addresses": ["192.0.2.8"], "ipv6_addresses": []}]


@pytest.mark.parametrize(("request_", "message"), [
    ({"domains": [{"name": "x"}]}, "must have a domain name field"),
    ({"domains": [{"domain_name": "bad_name.com"}]}, "is not a valid domain name"),
    ({}, "missing required field 'domains'"),
])
def test_bad_requests_are_refused(request_: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message):
        DomainResolutionStep().parse_args([json.dumps(request_)])
