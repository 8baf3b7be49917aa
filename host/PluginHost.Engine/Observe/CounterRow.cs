using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using PluginHost.Compose;

namespace PluginHost.Observe;

/// <summary>
/// One row of the stats map (<c>struct ph_stats_row</c>) summed over CPUs: every counter of the entry program
/// (<see cref="EntryCounter"/>) or of one stage (<see cref="StageCounter"/>). The one type a counter value is
/// kept in, from the map to the state file, <c>stats</c>, the API and <c>/metrics</c>. In JSON, an object of
/// every counter by its camelCase name (<see cref="CounterLayout.JsonName{TCounter}"/>), in enum order.
/// </summary>
[JsonConverter(typeof(CounterRowJsonConverter))]
public sealed class CounterRow<TCounter> : IEquatable<CounterRow<TCounter>> where TCounter : struct, Enum
{
    /// <summary>Every counter of the row, in column order (the enum's values are 0, 1, 2, ...).</summary>
    public static readonly IReadOnlyList<TCounter> All = Enum.GetValues<TCounter>();

    public static readonly CounterRow<TCounter> Zero = new(new ulong[All.Count]);

    private readonly ulong[] _values;

    private CounterRow(ulong[] values) => _values = values;

    /// <summary>A row from values in column order; columns past the enum's last counter are ignored, missing ones are 0.</summary>
    public static CounterRow<TCounter> FromColumns(ReadOnlySpan<ulong> columns)
    {
        var values = new ulong[All.Count];
        columns[..Math.Min(columns.Length, values.Length)].CopyTo(values);
        return new CounterRow<TCounter>(values);
    }

    internal static CounterRow<TCounter> From(IEnumerable<KeyValuePair<TCounter, ulong>> counters)
    {
        var values = new ulong[All.Count];
        foreach (var (c, v) in counters)
            values[Column(c)] = v;
        return new CounterRow<TCounter>(values);
    }

    public ulong this[TCounter counter] => _values[Column(counter)];

    /// <summary>This row with one counter replaced.</summary>
    public CounterRow<TCounter> With(TCounter counter, ulong value)
    {
        var values = (ulong[])_values.Clone();
        values[Column(counter)] = value;
        return new CounterRow<TCounter>(values);
    }

    /// <summary>Counter by counter sum (totals across generations).</summary>
    public static CounterRow<TCounter> operator +(CounterRow<TCounter> a, CounterRow<TCounter> b)
    {
        var values = new ulong[All.Count];
        for (int i = 0; i < values.Length; i++)
            values[i] = a._values[i] + b._values[i];
        return new CounterRow<TCounter>(values);
    }

    /// <summary>
    /// Counter by counter difference, never below zero: <paramref name="later"/> read after <paramref name="earlier"/>
    /// (rates), or a derived count less what finished (a read races with packets in flight).
    /// </summary>
    public static CounterRow<TCounter> operator -(CounterRow<TCounter> later, CounterRow<TCounter> earlier)
    {
        var values = new ulong[All.Count];
        for (int i = 0; i < values.Length; i++)
            values[i] = later._values[i] > earlier._values[i] ? later._values[i] - earlier._values[i] : 0;
        return new CounterRow<TCounter>(values);
    }

    public IEnumerable<(TCounter Counter, ulong Value)> Values => All.Select(c => (c, this[c]));

    public bool Equals(CounterRow<TCounter>? other) => other is not null && _values.AsSpan().SequenceEqual(other._values);

    public override bool Equals(object? obj) => Equals(obj as CounterRow<TCounter>);

    public override int GetHashCode() => _values.Aggregate(0, (h, v) => HashCode.Combine(h, v));

    public override string ToString() => string.Join(", ", Values.Select(v => $"{CounterLayout.JsonName(v.Counter)}={v.Value}"));

    private static int Column(TCounter counter) => Unsafe.As<TCounter, int>(ref counter);
}

/// <summary>
/// Writes a <see cref="CounterRow{TCounter}"/> as <c>{"packets": 1, "redirectedBytes": 98, ...}</c>. Reads names
/// case-insensitively, so state files written before the names were camelCase ("Packets") still read; unknown
/// names (a counter a newer host added) are skipped.
/// </summary>
internal sealed class CounterRowJsonConverter : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(CounterRow<>);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(RowConverter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;

    private sealed class RowConverter<TCounter> : JsonConverter<CounterRow<TCounter>> where TCounter : struct, Enum
    {
        private static readonly Dictionary<string, TCounter> ByName =
            CounterRow<TCounter>.All.ToDictionary(CounterLayout.JsonName, c => c, StringComparer.OrdinalIgnoreCase);

        public override CounterRow<TCounter> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
                throw new JsonException($"read {typeof(TCounter).Name} counters: expected an object, got {reader.TokenType}");
            var counters = new List<KeyValuePair<TCounter, ulong>>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string name = reader.GetString()!;
                reader.Read();
                if (ByName.TryGetValue(name, out var counter))
                    counters.Add(new(counter, reader.GetUInt64()));
                else
                    reader.Skip();
            }
            return CounterRow<TCounter>.From(counters);
        }

        public override void Write(Utf8JsonWriter writer, CounterRow<TCounter> value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (counter, v) in value.Values)
                writer.WriteNumber(CounterLayout.JsonName(counter), v);
            writer.WriteEndObject();
        }
    }
}
