#pragma once
// The HTTP side of /metrics (Qt HttpServer): GET /metrics answers render()'s text; another
// method on /metrics is 405, any other path 404. It serves from a thread of its own, so a
// scrape never waits for the GUI or the registry's thread (render() must be thread-safe).
// Plain HTTP with no authentication: listen on loopback or a private network
// (docs/security.md).

#include <QByteArray>
#include <QHostAddress>
#include <QString>

#include <chrono>
#include <functional>
#include <memory>

class QThread;

namespace opconsole::metrics {

class MetricsServer final
{
public:
    using Render = std::function<QByteArray()>;

    explicit MetricsServer(Render render);
    // Stops it (stop()).
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    // "host:port" with an IPv4 address, [an IPv6 one] or localhost; port 0 picks a free one.
    // False (and *error says why) for anything else. host and port may be null.
    static bool parseAddress(const QString &text, QHostAddress *host, quint16 *port,
                             QString *error = nullptr);

    // What one client may hold: /metrics is unauthenticated, so a peer that opens connections
    // and sends nothing, or sends without end, is cut off rather than left to take memory and
    // sockets. A scraper (one connection, a request of a few hundred bytes every 15 s or so)
    // never meets them; it reconnects when its connection is closed.
    struct Limits
    {
        int maxConnections = 16;                          // more are closed at once
        std::chrono::milliseconds idleTimeout{60'000};    // nothing read or written: closed
        std::chrono::milliseconds requestTimeout{10'000}; // first byte to answer, or closed
        qint64 maxBytesIn = 1 << 20;                      // read over a connection's life: closed
    };

    // Listens on `address` (parseAddress); false with *error when it is not an address or
    // cannot be bound. Once started it serves until stop().
    bool start(const QString &address, QString *error = nullptr)
    {
        return start(address, {}, error);
    }
    bool start(const QString &address, const Limits &limits, QString *error = nullptr);
    // Closes the listener and every connection, and ends the thread; idempotent.
    void stop();

    bool isRunning() const { return m_thread != nullptr; }
    quint16 port() const { return m_port; }
    QString address() const; // host:port as bound ([v6]:port)
    bool isLoopback() const { return m_host.isLoopback(); }

private:
    Render m_render;
    std::unique_ptr<QThread> m_thread; // serves; its server goes when it finishes
    QHostAddress m_host;
    quint16 m_port = 0;
};

} // namespace opconsole::metrics
