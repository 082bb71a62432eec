#include "metricsserver.h"

#include "exposition.h"

#include <QAbstractHttpServer>
#include <QHttpServerRequest>
#include <QHttpServerResponder>
#include <QTcpServer>
#include <QTcpSocket>
#include <QThread>
#include <QTimer>

#include <unistd.h>

#include <chrono>
#include <utility>

namespace opconsole::metrics {

namespace {

using Status = QHttpServerResponder::StatusCode;

// A listener that holds its connections to MetricsServer::Limits: a connection over the count
// is closed as it comes, one idle for the timeout or that has sent over the byte budget is
// closed (QAbstractHttpServer deletes a socket once it disconnects).
class GuardedTcpServer final : public QTcpServer
{
public:
    GuardedTcpServer(const MetricsServer::Limits &limits, QObject *parent)
        : QTcpServer(parent), m_limits(limits)
    {}

protected:
    void incomingConnection(qintptr descriptor) override
    {
        auto *socket = new QTcpSocket(this);
        if (!socket->setSocketDescriptor(descriptor)) {
            ::close(int(descriptor));
            delete socket;
            return;
        }
        if (m_open >= m_limits.maxConnections) {
            socket->abort();
            socket->deleteLater();
            return;
        }
        ++m_open;
        connect(socket, &QObject::destroyed, this, [this] { --m_open; });
        auto *idle = new QTimer(socket);
        idle->setSingleShot(true);
        idle->setInterval(m_limits.idleTimeout);
        connect(idle, &QTimer::timeout, socket, &QTcpSocket::abort);
        // A request has requestTimeout from its first byte to its answer: a peer that sends a
        // byte now and then (never a whole request) is closed, not kept for ever.
        auto *request = new QTimer(socket);
        request->setSingleShot(true);
        request->setInterval(m_limits.requestTimeout);
        connect(request, &QTimer::timeout, socket, &QTcpSocket::abort);
        // Before the HTTP server's own readyRead slot (connected once it takes the socket):
        // what arrived is counted before it is read.
        connect(socket, &QTcpSocket::readyRead, socket,
                [socket, idle, request, limit = m_limits.maxBytesIn, in = qint64(0)]() mutable {
                    in += socket->bytesAvailable();
                    if (in > limit) {
                        socket->abort();
                        return;
                    }
                    idle->start();
                    if (!request->isActive())
                        request->start();
                });
        connect(socket, &QTcpSocket::bytesWritten, idle, [idle, request] {
            idle->start();
            request->stop(); // answered
        });
        idle->start();
        addPendingConnection(socket);
    }

private:
    const MetricsServer::Limits m_limits;
    int m_open = 0;
};

// Routing by hand rather than QHttpServer's router: that one answers a POST to a GET-only
// route with 404 (Qt 6.4), where a method that is not allowed is 405.
class MetricsHttp final : public QAbstractHttpServer
{
public:
    MetricsHttp(MetricsServer::Render render, QObject *parent)
        : QAbstractHttpServer(parent), m_render(std::move(render))
    {}

    // In this object's thread.
    quint16 listenOn(const QHostAddress &host, quint16 port, const MetricsServer::Limits &limits,
                     QString *error)
    {
        auto *tcp = new GuardedTcpServer(limits, this);
        if (!tcp->listen(host, port)) {
            *error = tcp->errorString();
            delete tcp;
            return 0;
        }
        bind(tcp);
        return tcp->serverPort();
    }

protected:
    bool handleRequest(const QHttpServerRequest &request, QTcpSocket *socket) override
    {
        QHttpServerResponder responder = makeResponder(request, socket);
        const QByteArray text = QByteArrayLiteral("text/plain; charset=utf-8");
        if (request.url().path() != QLatin1String("/metrics")) {
            responder.write(QByteArrayLiteral("Not found: the metrics are at /metrics.\n"), text,
                            Status::NotFound);
        } else if (request.method() == QHttpServerRequest::Method::Head) {
            responder.write({{"Allow", "GET"}}, Status::MethodNotAllowed); // no body to HEAD
        } else if (request.method() != QHttpServerRequest::Method::Get) {
            responder.write(QByteArrayLiteral("Method not allowed: GET /metrics.\n"),
                            {{"Content-Type", text}, {"Allow", "GET"}}, Status::MethodNotAllowed);
        } else {
            responder.write(m_render(), QByteArray(ContentType));
        }
        return true;
    }

    void missingHandler(const QHttpServerRequest &request, QTcpSocket *socket) override
    {
        makeResponder(request, socket).write(Status::NotFound);
    }

private:
    MetricsServer::Render m_render;
};

} // namespace

MetricsServer::MetricsServer(Render render) : m_render(std::move(render)) {}

MetricsServer::~MetricsServer()
{
    stop();
}

bool MetricsServer::parseAddress(const QString &text, QHostAddress *host, quint16 *port,
                                 QString *error)
{
    const auto fail = [error](const QString &why) {
        if (error)
            *error = why;
        return false;
    };
    const qsizetype colon = text.lastIndexOf(QLatin1Char(':'));
    if (colon <= 0)
        return fail(QStringLiteral("\"%1\" is not host:port (e.g. 127.0.0.1:9464)").arg(text));
    const QString portText = text.mid(colon + 1);
    bool digits = !portText.isEmpty() && portText.size() <= 5;
    for (const QChar c : portText)
        digits = digits && c >= QLatin1Char('0') && c <= QLatin1Char('9');
    const uint number = digits ? portText.toUInt() : 0;
    if (!digits || number > 65535)
        return fail(QStringLiteral("the port of \"%1\" is not 0 to 65535").arg(text));
    QString hostText = text.left(colon);
    const bool bracketed = hostText.startsWith(QLatin1Char('[')) &&
                           hostText.endsWith(QLatin1Char(']')) && hostText.size() > 2;
    if (bracketed)
        hostText = hostText.mid(1, hostText.size() - 2);
    QHostAddress address;
    if (hostText == QLatin1String("localhost")) {
        address = QHostAddress(QHostAddress::LocalHost);
    } else if (!address.setAddress(hostText) ||
               (address.protocol() == QAbstractSocket::IPv6Protocol) != bracketed) {
        return fail(QStringLiteral("\"%1\" is not an IP address (IPv6 in brackets: "
                                   "[::1]:9464) or localhost")
                        .arg(text.left(colon)));
    }
    if (host)
        *host = address;
    if (port)
        *port = quint16(number);
    return true;
}

bool MetricsServer::start(const QString &address, const Limits &limits, QString *error)
{
    stop();
    QHostAddress host;
    quint16 port = 0;
    if (!parseAddress(address, &host, &port, error))
        return false;
    auto thread = std::make_unique<QThread>();
    thread->setObjectName(QStringLiteral("metrics"));
    // The server is made in its thread (its members then belong there too) and goes with the
    // thread: deferred deletes run as it finishes.
    auto *anchor = new QObject;
    anchor->moveToThread(thread.get());
    QObject::connect(thread.get(), &QThread::finished, anchor, &QObject::deleteLater);
    thread->start();
    QString why;
    quint16 bound = 0;
    QMetaObject::invokeMethod(
        anchor,
        [&] {
            auto *http = new MetricsHttp(m_render, anchor);
            bound = http->listenOn(host, port, limits, &why);
        },
        Qt::BlockingQueuedConnection);
    m_thread = std::move(thread);
    if (bound == 0) {
        stop();
        if (error)
            *error = QStringLiteral("cannot listen on %1: %2").arg(address, why);
        return false;
    }
    m_host = host;
    m_port = bound;
    return true;
}

void MetricsServer::stop()
{
    if (!m_thread)
        return;
    m_thread->quit();
    // A scrape in progress ends first (render() takes a few locks briefly).
    if (!m_thread->wait(QDeadlineTimer(std::chrono::seconds(10)))) {
        qWarning("metrics: the server's thread did not end within 10 s; left running");
        (void)m_thread.release();
    }
    m_thread.reset();
    m_port = 0;
}

QString MetricsServer::address() const
{
    if (m_host.protocol() == QAbstractSocket::IPv6Protocol)
        return QStringLiteral("[%1]:%2").arg(m_host.toString()).arg(m_port);
    return QStringLiteral("%1:%2").arg(m_host.toString()).arg(m_port);
}

} // namespace opconsole::metrics
