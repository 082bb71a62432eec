// The gRPC services every tool expects besides the hub's own (docs/security.md,
// docs/operations.md): server reflection on the operator listener and the standard health service
// on both listeners, over real loopback gRPC, plaintext and TLS.
//
// grpcurl is not on Debian 12, and Debian ships neither the reflection nor the health .proto:
// the client here is built at run time. Reflection's messages come from the descriptors that
// libgrpc++_reflection registers in protobuf's generated pool (the hub links it); health's two
// messages are declared below as the standard (grpc/health/v1/health.proto) defines them. Both
// are used as dynamic messages over a generic call.
#include "hubrig.h"
#include "operatorservice.h"
#include "testcerts.h"
#include "tlscredentials.h"
#include "tokens.h"

#include <QElapsedTimer>
#include <QTest>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>

#include <optional>
#include <set>

using namespace opconsole;
using namespace std::chrono;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::DynamicMessageFactory;
using google::protobuf::FileDescriptorProto;
using google::protobuf::Message;
using google::protobuf::TextFormat;

namespace {

constexpr char Reflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
constexpr char HealthCheck[] = "/grpc.health.v1.Health/Check";
constexpr char HealthWatch[] = "/grpc.health.v1.Health/Watch";

// grpc.health.v1's messages as the standard defines them (no copy of health.proto ships here).
constexpr char HealthSchema[] = R"(
  name: "opconsole_test/health.proto" package: "grpc.health.v1" syntax: "proto3"
  message_type {
    name: "HealthCheckRequest"
    field { name: "service" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  message_type {
    name: "HealthCheckResponse"
    field {
      name: "status" number: 1 label: LABEL_OPTIONAL type: TYPE_ENUM
      type_name: ".grpc.health.v1.HealthCheckResponse.ServingStatus"
    }
    enum_type {
      name: "ServingStatus"
      value { name: "UNKNOWN" number: 0 }
      value { name: "SERVING" number: 1 }
      value { name: "NOT_SERVING" number: 2 }
      value { name: "SERVICE_UNKNOWN" number: 3 }
    }
  }
)";
enum ServingStatus
{
    Unknown = 0,
    Serving = 1,
    NotServing = 2
};

// Message types by full name: reflection's from the generated pool, health's from HealthSchema.
class Schemas
{
public:
    Schemas()
    {
        FileDescriptorProto health;
        if (TextFormat::ParseFromString(HealthSchema, &health))
            m_health.BuildFile(health);
    }
    std::unique_ptr<Message> make(const std::string &type, const std::string &text = {})
    {
        const Descriptor *descriptor = m_health.FindMessageTypeByName(type);
        if (!descriptor)
            descriptor = DescriptorPool::generated_pool()->FindMessageTypeByName(type);
        if (!descriptor)
            return nullptr;
        std::unique_ptr<Message> message(m_factory.GetPrototype(descriptor)->New());
        if (!TextFormat::ParseFromString(text, message.get()))
            return nullptr;
        return message;
    }

private:
    DescriptorPool m_health;
    DynamicMessageFactory m_factory;
};

Schemas &schemas()
{
    static Schemas instance;
    return instance;
}

// One call of any kind through the completion queue, one step at a time, each bounded by the
// call's deadline (and a second more for the queue to say so).
class Call
{
public:
    Call(const std::shared_ptr<grpc::Channel> &channel, const std::string &method,
         const std::string &token = {}, milliseconds timeout = 10s)
        : m_stub(channel), m_deadline(system_clock::now() + timeout)
    {
        m_context.set_deadline(m_deadline);
        if (!token.empty())
            m_context.AddMetadata("authorization", "Bearer " + token);
        m_call = m_stub.PrepareCall(&m_context, method, &m_queue);
        m_ok = m_call && step([this](void *tag) { m_call->StartCall(tag); });
    }
    ~Call()
    {
        if (m_call && !m_finished) {
            m_context.TryCancel();
            finish();
        }
        m_queue.Shutdown();
        void *tag = nullptr;
        bool ok = false;
        while (m_queue.AsyncNext(&tag, &ok, m_deadline + 2s) ==
               grpc::CompletionQueue::NextStatus::GOT_EVENT) {
        }
    }
    bool send(const Message &message, bool last = true)
    {
        grpc::ByteBuffer buffer;
        bool own = false;
        if (!m_ok || !grpc::SerializationTraits<Message>::Serialize(message, &buffer, &own).ok())
            return false;
        m_ok = step([&](void *tag) { m_call->Write(buffer, tag); });
        if (m_ok && last)
            m_ok = step([this](void *tag) { m_call->WritesDone(tag); });
        return m_ok;
    }
    // The next message as `type`; null at the end of the stream (or on an error).
    std::unique_ptr<Message> receive(const std::string &type)
    {
        grpc::ByteBuffer buffer;
        if (!m_ok || !step([&](void *tag) { m_call->Read(&buffer, tag); }))
            return nullptr;
        std::unique_ptr<Message> message = schemas().make(type);
        if (!message ||
            !grpc::SerializationTraits<Message>::Deserialize(&buffer, message.get()).ok())
            return nullptr;
        return message;
    }
    grpc::Status finish()
    {
        if (!m_call)
            return {grpc::StatusCode::INTERNAL, "no call"};
        if (m_finished)
            return m_status;
        m_finished = true;
        if (!step([this](void *tag) { m_call->Finish(&m_status, tag); }, true))
            return {grpc::StatusCode::DEADLINE_EXCEEDED, "the test's wait ran out"};
        return m_status;
    }

private:
    template <class Start> bool step(Start start, bool anyOk = false)
    {
        int marker = 0;
        start(&marker);
        void *tag = nullptr;
        bool ok = false;
        if (m_queue.AsyncNext(&tag, &ok, m_deadline + 1s) !=
                grpc::CompletionQueue::NextStatus::GOT_EVENT ||
            tag != &marker) {
            m_context.TryCancel();
            return false;
        }
        return ok || anyOk;
    }

    grpc::GenericStub m_stub;
    system_clock::time_point m_deadline;
    grpc::ClientContext m_context;
    grpc::CompletionQueue m_queue;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> m_call;
    grpc::Status m_status;
    bool m_ok = false;
    bool m_finished = false;
};

// One reflection request (its text form) and the answer.
std::unique_ptr<Message> reflect(const std::shared_ptr<grpc::Channel> &channel,
                                 const std::string &request, grpc::Status *status,
                                 const std::string &token = {})
{
    Call call(channel, Reflection, token);
    const auto message = schemas().make("grpc.reflection.v1alpha.ServerReflectionRequest", request);
    if (!message)
        return nullptr;
    call.send(*message);
    auto answer = call.receive("grpc.reflection.v1alpha.ServerReflectionResponse");
    *status = call.finish();
    return answer;
}

// The services reflection lists; empty with *status when the call fails.
std::set<std::string> listServices(const std::shared_ptr<grpc::Channel> &channel,
                                   grpc::Status *status, const std::string &token = {})
{
    std::set<std::string> names;
    const auto answer = reflect(channel, R"(list_services: "")", status, token);
    if (!answer)
        return names;
    // ServerReflectionResponse.list_services_response.service[].name
    const auto *reflection = answer->GetReflection();
    const auto *list = answer->GetDescriptor()->FindFieldByName("list_services_response");
    if (!list || !reflection->HasField(*answer, list))
        return names;
    const Message &services = reflection->GetMessage(*answer, list);
    const auto *service = services.GetDescriptor()->FindFieldByName("service");
    for (int i = 0; i < services.GetReflection()->FieldSize(services, service); ++i) {
        const Message &entry = services.GetReflection()->GetRepeatedMessage(services, service, i);
        names.insert(entry.GetReflection()->GetString(
            entry, entry.GetDescriptor()->FindFieldByName("name")));
    }
    return names;
}

// What a health check answered: the call's status and, when OK, the serving status.
struct Health
{
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
    int status = -1;
    std::string text() const
    {
        return "code " + std::to_string(code) + ", status " + std::to_string(status);
    }
};

int servingStatus(const Message &response)
{
    return response.GetReflection()->GetEnumValue(
        response, response.GetDescriptor()->FindFieldByName("status"));
}

Health check(const std::shared_ptr<grpc::Channel> &channel, const std::string &service)
{
    Call call(channel, HealthCheck);
    auto request = schemas().make("grpc.health.v1.HealthCheckRequest");
    if (!request)
        return {};
    request->GetReflection()->SetString(
        request.get(), request->GetDescriptor()->FindFieldByName("service"), service);
    call.send(*request);
    const auto answer = call.receive("grpc.health.v1.HealthCheckResponse");
    Health health;
    health.code = call.finish().error_code();
    if (answer)
        health.status = servingStatus(*answer);
    return health;
}

// A hub with the Operator API, plaintext on loopback (or TLS with operator tokens).
struct Rig : HubRig
{
    explicit Rig(HubOptions options = {}, OperatorAccessOptions access = {}) : HubRig(options)
    {
        api = std::make_unique<OperatorService>(*service, feed);
        api->setAccess(std::move(access));
        api->attachTo(*hub);
        start();
    }
    ~Rig() { api.reset(); } // stops the hub first
    std::shared_ptr<grpc::Channel> operators(std::shared_ptr<grpc::ChannelCredentials> c = {})
    {
        return grpc::CreateChannel(operatorAddress(), c ? c : grpc::InsecureChannelCredentials());
    }
    std::shared_ptr<grpc::Channel> bots(std::shared_ptr<grpc::ChannelCredentials> c = {})
    {
        return grpc::CreateChannel(address(), c ? c : grpc::InsecureChannelCredentials());
    }

    std::unique_ptr<OperatorService> api;
};

} // namespace

class TestGrpcServices : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void reflectionListsAndDescribesTheOperatorApi();
    void botListenerHasHealthButNoReflection();
    void healthTurnsNotServingWhenStopBegins();
    void openReflectionStreamsCannotStarveTheOperatorApi();
    void overTlsWithTokensNeitherNeedsATokenNorCountsAsRefused();
    void aSecondHubCannotTakeTheSamePorts();
};

void TestGrpcServices::initTestCase()
{
    // The client's schemas: reflection's from libgrpc++_reflection, health's from the text.
    QVERIFY(schemas().make("grpc.reflection.v1alpha.ServerReflectionRequest"));
    QVERIFY(schemas().make("grpc.health.v1.HealthCheckResponse"));
}

void TestGrpcServices::reflectionListsAndDescribesTheOperatorApi()
{
    Rig rig;
    QVERIFY(rig.started);
    const auto channel = rig.operators();
    grpc::Status status;
    const std::set<std::string> services = listServices(channel, &status);
    QVERIFY2(status.ok(), status.error_message().c_str());
    QVERIFY(services.contains("opconsole.v1.Operator"));
    QVERIFY(services.contains("grpc.health.v1.Health"));
    QVERIFY(services.contains("grpc.reflection.v1alpha.ServerReflection"));
    QVERIFY(!services.contains("opconsole.v1.BotLink")); // not served on this listener

    // The file that declares the Operator service, with every file it imports: enough to build
    // its descriptors (what grpcurl does to call a method from JSON).
    const auto answer =
        reflect(channel, R"(file_containing_symbol: "opconsole.v1.Operator")", &status);
    QVERIFY2(status.ok() && answer, status.error_message().c_str());
    const auto *field = answer->GetDescriptor()->FindFieldByName("file_descriptor_response");
    QVERIFY(answer->GetReflection()->HasField(*answer, field));
    const Message &files = answer->GetReflection()->GetMessage(*answer, field);
    const auto *bytes = files.GetDescriptor()->FindFieldByName("file_descriptor_proto");
    const int count = files.GetReflection()->FieldSize(files, bytes);
    QVERIFY(count >= 1);
    google::protobuf::SimpleDescriptorDatabase database;
    bool declaresOperator = false;
    for (int i = 0; i < count; ++i) {
        FileDescriptorProto file;
        QVERIFY(file.ParseFromString(files.GetReflection()->GetRepeatedString(files, bytes, i)));
        for (const auto &service : file.service()) {
            if (file.package() == "opconsole.v1" && service.name() == "Operator")
                declaresOperator = true;
        }
        QVERIFY(database.Add(file));
    }
    QVERIFY(declaresOperator);
    DescriptorPool pool(&database);
    const auto *listBots = pool.FindMethodByName("opconsole.v1.Operator.ListBots");
    QVERIFY(listBots);
    QCOMPARE(listBots->input_type()->full_name(), std::string("opconsole.v1.ListBotsRequest"));
    QVERIFY(pool.FindMethodByName("opconsole.v1.Operator.SendCommand"));

    // A symbol nobody declares: NOT_FOUND inside the answer, and the stream still ends OK.
    const auto missing =
        reflect(channel, R"(file_containing_symbol: "opconsole.v1.NoSuchThing")", &status);
    QVERIFY(status.ok() && missing);
    QVERIFY(missing->GetReflection()->HasField(
        *missing, missing->GetDescriptor()->FindFieldByName("error_response")));

    // The reflection and health calls are not Operator calls: nothing was refused.
    QCOMPARE(rig.api->accessCounters().unauthenticated, quint64(0));
    QCOMPARE(rig.api->accessCounters().permissionDenied, quint64(0));
}

void TestGrpcServices::botListenerHasHealthButNoReflection()
{
    // Neither, in fact: the bot port faces the fleet, and gRPC's health Watch streams are
    // uncapped (a review held 20,000 of them: 360 MB). Probes use the operator listener.
    Rig rig;
    QVERIFY(rig.started);
    const auto channel = rig.bots();
    QCOMPARE(check(channel, "").code, grpc::StatusCode::UNIMPLEMENTED);
    QCOMPARE(check(channel, "opconsole.v1.BotLink").code, grpc::StatusCode::UNIMPLEMENTED);
    // The operator listener answers for its own services only.
    QCOMPARE(check(rig.operators(), "opconsole.v1.BotLink").code, grpc::StatusCode::NOT_FOUND);
    grpc::Status status;
    QVERIFY(listServices(channel, &status).empty());
    QCOMPARE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

void TestGrpcServices::healthTurnsNotServingWhenStopBegins()
{
    Rig rig;
    QVERIFY(rig.started);
    const auto operators = rig.operators();
    for (const std::string &service : {std::string(), std::string("opconsole.v1.Operator")}) {
        const Health health = check(operators, service);
        QVERIFY2(health.code == grpc::StatusCode::OK && health.status == Serving,
                 (service + ": " + health.text()).c_str());
    }
    QCOMPARE(check(operators, "no.such.Service").code, grpc::StatusCode::NOT_FOUND);

    // A load balancer's Watch: SERVING now, then NOT_SERVING or the end of the stream.
    Call watch(operators, HealthWatch, {}, 30s);
    auto request = schemas().make("grpc.health.v1.HealthCheckRequest");
    QVERIFY(request && watch.send(*request));
    auto update = watch.receive("grpc.health.v1.HealthCheckResponse");
    QVERIFY(update);
    QCOMPARE(servingStatus(*update), int(Serving));

    // Inside stop(), before the servers go down, both listeners still answer: NOT_SERVING.
    Health duringStop[4];
    QObject context;
    rig.hub->addStopStep(Hub::StopPhase::FailCommands, &context, [&](const QString &) {
        duringStop[0] = check(operators, "");
        duringStop[1] = check(operators, "opconsole.v1.Operator");
        duringStop[2] = check(operators, "");
        duringStop[3] = check(operators, "opconsole.v1.Operator");
    });
    QElapsedTimer stopping;
    stopping.start();
    rig.hub->stop();
    qInfo("stop took %lld ms with a health Watch open", stopping.elapsed());
    for (const Health &health : duringStop) {
        QVERIFY2(health.code == grpc::StatusCode::OK && health.status == NotServing,
                 health.text().c_str());
    }
    // The Watch saw NOT_SERVING, or its stream ended with the server.
    update = watch.receive("grpc.health.v1.HealthCheckResponse");
    if (update)
        QCOMPARE(servingStatus(*update), int(NotServing));
    watch.finish();
    // After stop the listener is gone: the call fails rather than saying SERVING.
    const Health after = check(operators, "");
    QVERIFY2(after.code != grpc::StatusCode::OK, after.text().c_str());

    // Started again: SERVING again, on the new listeners.
    QVERIFY(rig.start());
    const Health again = check(rig.operators(), "opconsole.v1.Operator");
    QVERIFY2(again.code == grpc::StatusCode::OK && again.status == Serving, again.text().c_str());
}

void TestGrpcServices::openReflectionStreamsCannotStarveTheOperatorApi()
{
    Rig rig;
    QVERIFY(rig.started);
    const auto channel = rig.operators();
    const auto list =
        schemas().make("grpc.reflection.v1alpha.ServerReflectionRequest", R"(list_services: "")");
    QVERIFY(list);
    // Each open reflection stream holds one of the listener's 8 synchronous threads (one of
    // them polls): 16 open streams find the rest RESOURCE_EXHAUSTED, not 16 threads.
    std::vector<std::unique_ptr<Call>> open;
    int answered = 0, exhausted = 0;
    for (int i = 0; i < 16; ++i) {
        auto call = std::make_unique<Call>(channel, Reflection);
        if (call->send(*list, /*last=*/false) &&
            call->receive("grpc.reflection.v1alpha.ServerReflectionResponse")) {
            ++answered;
            open.push_back(std::move(call)); // and left open
        } else if (call->finish().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++exhausted;
        }
    }
    QVERIFY2(answered >= 1 && answered < 8 && answered + exhausted == 16,
             qPrintable(QStringLiteral("%1 answered, %2 exhausted").arg(answered).arg(exhausted)));
    // The Operator API and health are callback services: untouched.
    QCOMPARE(check(channel, "").status, int(Serving));
    {
        Call listBots(channel, "/opconsole.v1.Operator/ListBots");
        const auto empty = schemas().make("opconsole.v1.ListBotsRequest");
        QVERIFY(empty && listBots.send(*empty));
        QVERIFY(listBots.receive("opconsole.v1.ListBotsResponse"));
        QVERIFY(listBots.finish().ok());
    }
    // Closed streams give their threads back.
    open.clear();
    grpc::Status status;
    QVERIFY(QTest::qWaitFor(
        [&] { return listServices(channel, &status).contains("opconsole.v1.Operator"); }, 10'000));
}

void TestGrpcServices::overTlsWithTokensNeitherNeedsATokenNorCountsAsRefused()
{
    TestCerts certs;
    QString error;
    QVERIFY2(certs.make({}, {}, &error), qPrintable(error));
    const security::ServerTls tls{certs.hubCert(), certs.hubKey(), certs.ca()};
    HubOptions options;
    options.operatorListenAddress = QStringLiteral("127.0.0.1:0");
    options.botCredentials = security::serverCredentials(tls, &error);
    options.operatorCredentials = security::serverCredentials(tls, &error);
    QVERIFY2(options.botCredentials && options.operatorCredentials, qPrintable(error));
    const QString token = security::newToken();
    const auto directory = security::OperatorDirectory::parse(
        ("alice admin " + security::tokenHash(token.toUtf8()) + "\n").toUtf8(), "test", &error);
    QVERIFY2(directory, qPrintable(error));
    Rig rig(options, {directory, 50});
    QVERIFY(rig.started);
    const auto trusted = security::channelCredentials({certs.ca(), {}, {}, {}}, &error);
    QVERIFY2(trusted, qPrintable(error));
    const auto operators = rig.operators(trusted);

    // Without a token: the services' names and schemas, and health; nothing else.
    grpc::Status status;
    const std::set<std::string> services = listServices(operators, &status);
    QVERIFY2(status.ok(), status.error_message().c_str());
    QVERIFY(services.contains("opconsole.v1.Operator"));
    QVERIFY(services.contains("grpc.health.v1.Health"));
    const Health health = check(operators, "opconsole.v1.Operator");
    QVERIFY2(health.code == grpc::StatusCode::OK && health.status == Serving,
             health.text().c_str());
    // The bot port (TLS too) serves no health service.
    QCOMPARE(check(rig.bots(trusted), "").code, grpc::StatusCode::UNIMPLEMENTED);
    QCOMPARE(rig.api->accessCounters().unauthenticated, quint64(0));
    // With the token, reflection answers the same.
    QCOMPARE(listServices(operators, &status, token.toStdString()), services);
    // An Operator method without a token is still refused, and counted as before.
    {
        Call listBots(operators, "/opconsole.v1.Operator/ListBots");
        const auto empty = schemas().make("opconsole.v1.ListBotsRequest");
        QVERIFY(empty);
        listBots.send(*empty);
        QVERIFY(!listBots.receive("opconsole.v1.ListBotsResponse"));
        QCOMPARE(listBots.finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
    }
    QCOMPARE(rig.api->accessCounters().unauthenticated, quint64(1));

    // The listener's TLS holds for them too: a plaintext client gets nothing.
    QVERIFY(check(rig.operators(), "").code != grpc::StatusCode::OK);
    QVERIFY(listServices(rig.operators(), &status).empty());
    QVERIFY(!status.ok());
    QVERIFY(check(rig.bots(), "").code != grpc::StatusCode::OK);
}

void TestGrpcServices::aSecondHubCannotTakeTheSamePorts()
{
    // SO_REUSEPORT off: a second hub on a port in use fails to start instead of sharing the
    // bots (or the operators) with the first (a review saw connections split between two).
    Rig first;
    QVERIFY(first.started);
    for (const bool operatorPort : {false, true}) {
        CommandRegistry registry;
        HubOptions options;
        options.listenAddress =
            operatorPort ? QStringLiteral("127.0.0.1:0") : QString::fromStdString(first.address());
        options.operatorListenAddress = operatorPort
                                            ? QString::fromStdString(first.operatorAddress())
                                            : QStringLiteral("127.0.0.1:0");
        Hub second(registry, options);
        CommandService service(registry, second);
        ChangeFeed feed(registry);
        OperatorService api(service, feed);
        api.attachTo(second);
        QString error;
        QVERIFY2(!second.start(&error), operatorPort ? "operator port shared" : "bot port shared");
        QVERIFY(!error.isEmpty());
    }
    // The first still serves both.
    QCOMPARE(check(first.operators(), "").status, int(Serving));
}

QTEST_GUILESS_MAIN(TestGrpcServices)
#include "tst_grpcservices.moc"
