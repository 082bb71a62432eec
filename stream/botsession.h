#pragma once
// Internal to stream/: one bot's BotLink stream, with an explicit state machine.
//
//   Handshaking --Hello accepted--> Live --end, replace, silence, stop, revoke--> Closing
//   --OnDone--> Done
//        |  \________bad or no Hello, refused credential, cancel, stop_______/
//        '--Hello of a bot awaiting approval--> Held --accepted--> Live
//                                                 \--rejected, end, stop--> Closing
//
// Every transition and every command write happens under the session's one mutex, so a
// command is written at most once, only while it is pending (CommandRegistry::markSent says
// so in the same step), and only while the session is Live: a session that has begun closing
// refuses sends, and the commands it did take are failed by its teardown. The hub's session
// table (HubPrivate) owns which session is current for a bot and the replacement rules.

#include "botcredential.h"
#include "hub.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "outqueue.h"

#include <QString>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>

namespace opconsole {

class CommandRegistry;

// What a session asks of the hub that owns it; called on gRPC threads, never under the
// session's mutex.
class SessionHost
{
public:
    virtual ~SessionHost() = default;
    virtual const HubOptions &sessionOptions() const = 0;
    // A Hello passed the wire checks: publish the session (BotSession::goLive) or close it.
    virtual void sessionHello(const std::shared_ptr<class BotSession> &session,
                              const opconsole::v1::Hello &hello) = 0;
    // A message of a Live session; returns what rule it broke, empty when none (the session
    // charges its violation budget and reports it through sessionViolation).
    virtual QString sessionMessage(BotSession &session, const QString &botId,
                                   const opconsole::v1::BotMessage &message) = 0;
    // The session began closing (once per session): fail its commands, update the table.
    virtual void sessionEnded(BotSession &session, const QString &reason) = 0;
    // A bot (or a client that never said Hello: empty id) broke a rule. Counted always;
    // reported (protocolViolation) within a budget per bot id that survives reconnects.
    // Returns false when the budget is spent: the session then ends its stream.
    virtual bool sessionViolation(const QString &botId, const QString &what) = 0;
    // A progress, heartbeat or status message over its rate was dropped.
    virtual void sessionRateLimited() = 0;
    // A write failed: the stream broke under the hub.
    virtual void sessionStreamError() = 0;
};

class BotSession final : public grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage>
{
public:
    enum class State : quint8
    {
        Handshaking, // waiting for Hello
        Held,        // said Hello; its identity awaits an admin's approval: no commands
        Live,        // published in the hub's table: commands may be written
        Closing,     // Finish requested (maybe after draining); refuses every send
        Done,        // gRPC is done with the stream (OnDone)
    };

    BotSession(SessionHost *host, quint64 id, BotCredential credential = {});
    ~BotSession() override;

    void begin(std::shared_ptr<BotSession> self);

    quint64 id() const { return m_id; }
    const BotCredential &credential() const { return m_credential; }
    // Set once by goLive(), before the session is published to other threads.
    QString botId() const;
    State state() const;
    std::chrono::steady_clock::time_point startedAt() const { return m_startedAt; }
    qint64 lastSeenNs() const { return m_lastSeenNs.load(std::memory_order_relaxed); }
    // Messages (and their bytes) waiting behind the write in flight.
    std::pair<size_t, size_t> queued() const;

    // Handshaking -> Live, with Welcome queued in the same step; false (nothing changes) when
    // the session is no longer handshaking (cancelled meanwhile).
    bool goLive(const QString &botId, v1::HubMessage welcome);
    // Handshaking -> Held, with Held queued; false when no longer handshaking.
    bool hold(const QString &botId, v1::HubMessage held);

    // Marks the command sent with this session and queues it, in one step under the session's
    // mutex: NotConnected unless Live, NotPending when the registry no longer has it pending
    // (expired, cancelled: it is not written), QueueFull past the queue's bounds. `message` is
    // moved from only when Queued.
    SendResult sendCommand(CommandRegistry &registry, const QString &commandId,
                           v1::HubMessage &message,
                           std::optional<std::chrono::milliseconds> responseTimeout);
    // Any other message (CancelCommand): queued while Live.
    SendResult send(v1::HubMessage message);

    // Live or Handshaking -> Closing; the first call tells the host (sessionEnded) and ends
    // the stream with `status` (with drain, what is queued goes out first). Later calls do
    // nothing. Returns whether this call closed it; then `counter`, if given, is incremented
    // before the host hears of it (so whoever sees the disconnect sees the count).
    bool close(const QString &reason, const grpc::Status &status, bool drain = false,
               std::atomic<quint64> *counter = nullptr);
    // Marks the session Closing without telling the host: the host has taken it out of its
    // table itself (replacement, stop) and fails its commands. Returns false if already closing.
    bool detach();
    // Ends the stream (after detach()).
    void finishStream(const grpc::Status &status, bool drain = false);
    // Refuses a handshaking or held stream: Reject{reason} goes out, then the stream ends with
    // status (a live one just ends with it).
    void reject(const QString &reason, const grpc::Status &status);

    // grpc reactions
    void OnReadDone(bool ok) override;
    void OnWriteDone(bool ok) override;
    void OnCancel() override;
    void OnDone() override;

private:
    // Under m_mutex: queue a message; true when the caller must StartWrite(m_writes.out()).
    SendResult pushLocked(v1::HubMessage &&message, bool &startWrite);
    void finishLocked(std::unique_lock<std::mutex> &lock, const grpc::Status &status, bool drain);

public:
    // A token bucket: `perSecond` on average, bursts of twice that. Not locked.
    static bool allowed(double &tokens, std::chrono::steady_clock::time_point &refilled,
                        double perSecond);

private:
    void handleHello();

    SessionHost *const m_host;
    const quint64 m_id;
    const BotCredential m_credential;
    const std::chrono::steady_clock::time_point m_startedAt;
    std::atomic<qint64> m_lastSeenNs{0};
    v1::BotMessage m_in;
    std::shared_ptr<BotSession> m_self;

    // Rate limits, touched only by the reading side (one read at a time).
    double m_progressTokens;
    double m_statusTokens;
    std::chrono::steady_clock::time_point m_progressRefilled, m_statusRefilled;

    mutable std::mutex m_mutex;
    State m_state = State::Handshaking;
    QString m_botId;
    OutQueue<v1::HubMessage> m_writes;
    bool m_finishRequested = false; // Finish called or due once the queue drains
    bool m_finished = false;        // Finish called
    grpc::Status m_status;
};

} // namespace opconsole
