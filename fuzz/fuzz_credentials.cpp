// libFuzzer target: what a caller or an admin's file gives the hub's security checks
// (docs/security.md, docs/fuzzing.md).
//
// Input: the first byte picks the parser (byte % 5): 0 an "authorization" header
// (security::bearerToken), 1 an operators file (OperatorDirectory::parse), 2 a bot-tokens file
// (BotTokens::parse), 3 a label selector (parseSelector), 4 a DecideBotRequest
// (api::checkDecideBot); the rest is its input. Invariants: a token taken from a header is
// 1..512 bytes of visible ASCII and comes back from "Bearer " + itself; every entry a file
// yields has a valid name, and is found by no token but its own (a file's hash, a name, the
// empty token find nothing); a selector that parses prints back to one that parses to the same;
// a DecideBot request that passes has a valid id and maps to one action.
#include "fuzzsupport.h"
#include "operatorrequest.h"
#include "protoconvert.h"
#include "tokens.h"
#include "wirecheck.h"

#include <cstdint>
#include <string>
#include <string_view>

using namespace opconsole;

OPCONSOLE_FUZZER_INITIALIZE("fuzz_credentials")

namespace {

void header(std::string_view text)
{
    const QByteArray token = security::bearerToken(text);
    if (token.isEmpty())
        return;
    REQUIRE(token.size() <= security::MaxTokenBytes);
    for (char c : token)
        REQUIRE(static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f);
    REQUIRE(security::bearerToken("Bearer " + token.toStdString()) == token);
}

void files(const QByteArray &text, bool operators)
{
    QString error;
    if (operators) {
        const auto directory =
            security::OperatorDirectory::parse(text, QStringLiteral("f"), &error);
        REQUIRE(directory || !error.isEmpty());
        if (!directory)
            return;
        REQUIRE(!directory->find(QByteArray()));
        REQUIRE(!directory->find(text.left(64)));
        REQUIRE(directory->size() <= 100'000);
        return;
    }
    const auto tokens = security::BotTokens::parse(text, QStringLiteral("f"), &error);
    REQUIRE(tokens || !error.isEmpty());
    if (tokens) {
        REQUIRE(!tokens->find(QByteArray()));
        REQUIRE(!tokens->find(text.left(64)));
    }
}

void selector(const QByteArray &text)
{
    QMap<QString, QString> parsed, again;
    QString error;
    if (!security::parseSelector(QString::fromUtf8(text), &parsed, &error))
        return;
    REQUIRE(security::parseSelector(security::selectorText(parsed), &again, &error));
    REQUIRE(again == parsed);
}

void decide(const char *data, int size)
{
    v1::DecideBotRequest request;
    if (!request.ParseFromArray(data, size))
        return;
    AdmissionAction action = AdmissionAction::Accept;
    if (!api::checkDecideBot(request, &action).isEmpty())
        return;
    REQUIRE(wire::checkId(request.bot_id(), "bot_id").empty());
    REQUIRE(request.decision() == v1::DECISION_ACCEPT ||
            request.decision() == v1::DECISION_REJECT || request.decision() == v1::DECISION_REVOKE);
    REQUIRE((action == AdmissionAction::Accept) == (request.decision() == v1::DECISION_ACCEPT));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    const auto *payload = reinterpret_cast<const char *>(data + 1);
    const int n = int(size - 1);
    const QByteArray bytes(payload, n);
    switch (data[0] % 5) {
    case 0:
        header(std::string_view(payload, size_t(n)));
        break;
    case 1:
        files(bytes, true);
        break;
    case 2:
        files(bytes, false);
        break;
    case 3:
        selector(bytes);
        break;
    case 4:
        decide(payload, n);
        break;
    }
    return 0;
}
